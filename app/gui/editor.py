"""The code editor: QPlainTextEdit with a gutter, bracket matching and ghost text.

Ghost text is drawn as a QTextLayout pre-edit area (the mechanism input methods use):
Qt lays it out inline — multi-line via U+2028 line separators — and pushes the rest of
the line and the lines below out of the way, yet it is never part of the document, so
it cannot be saved, copied or undone by accident. Only an accept inserts it, as one
undo step.
"""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QKeyEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QTextBlock,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
    QTextLayout,
)
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QTextEdit, QWidget

from app.core.ghost import Ghost
from app.gui.theme import LIGHT, Theme

log = logging.getLogger("starpad.editor")

_BRACKETS = {"(": ")", "[": "]", "{": "}"}
_CLOSING = {v: k for k, v in _BRACKETS.items()}
_LINE_SEPARATOR = "\u2028"
_BRACKET_SCAN_LIMIT = 20_000
#: ``load_text`` puts this many lines in at once (more than a screenful); the rest follows in slices.
LOAD_CHUNK_LINES = 600
#: Each later slice inserts text for about this long, so input and repaints wait at most ~this.
LOAD_SLICE_MS = 12.0
#: While a file loads, the scroll bar, gutter and progress are brought up to date this often:
#: repainting them after every slice cost twice the insertion itself (profiled on 20 MB).
LOAD_REFRESH_MS = 150.0
#: Characters in the first timed slice, before the editor has measured its insertion speed.
_FIRST_SLICE_CHARS = 64 * 1024
#: QTextDocument keeps line breaks as U+2029 between blocks (``toRawText``).
_BLOCK_SEPARATOR = "\u2029"
#: Characters QTextCursor::insertText does not keep (checked for every code point): U+2029,
#: U+FDD0 and U+FDD1 become a block break (a line break when saved); a U+FEFF that starts the
#: inserted string is dropped as a byte-order mark, and a U+FFFE there byte-swaps the rest.
_QT_ALTERED = ("\u2029", "\ufdd0", "\ufdd1", "\ufeff", "\ufffe")
#: Where stand-ins for those come from: the private-use areas, supplementary ones first
#: (no font or input method uses them).
_STAND_IN_POOL = (range(0xF0000, 0xFFFFE), range(0x100000, 0x10FFFE), range(0xE000, 0xF900))


def _after_lines(text: str, start: int, n_lines: int) -> int:
    """Offset just past the ``n_lines``-th newline from ``start`` (or the end of ``text``)."""
    pos = start
    for _ in range(n_lines):
        pos = text.find("\n", pos) + 1
        if pos == 0:
            return len(text)
    return pos


class _Shield:
    """Keeps the characters Qt alters (``_QT_ALTERED``) out of its hands, so the text stays exact.

    Each is swapped for a private-use character the text does not contain when the text
    enters the editor, and swapped back by ``CodeEditor.document_text``; it shows as one
    (unknown-glyph) character, keeps its place through edits, and is saved as the original.
    Text without them (nearly all) is left as it is.
    """

    def __init__(self, text: str = "") -> None:
        """Raises ValueError for a text that uses every private-use character (nothing is free)."""
        self.to_stand_in: dict[str, str] = {}
        present = [char for char in _QT_ALTERED if char in text]
        if present:
            free = (chr(c) for pool in _STAND_IN_POOL for c in pool if chr(c) not in text)
            for char in present:
                stand_in = next(free, None)
                if stand_in is None:
                    raise ValueError(
                        f"U+{ord(char):04X} cannot be shown exactly: the text uses every private-use character"
                    )
                self.to_stand_in[char] = stand_in
        self.from_stand_in = {v: k for k, v in self.to_stand_in.items()}

    def protect(self, text: str) -> str:
        for char, stand_in in self.to_stand_in.items():
            text = text.replace(char, stand_in)
        return text

    def restore(self, text: str) -> str:
        for stand_in, char in self.from_stand_in.items():
            text = text.replace(stand_in, char)
        return text


class _Gutter(QWidget):
    def __init__(self, editor: CodeEditor) -> None:
        super().__init__(editor)
        self._editor = editor

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(self._editor.gutter_width(), 0)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        self._editor.paint_gutter(event)


class CodeEditor(QPlainTextEdit):
    """A plain-text code editor that can show a completion as ghost text."""

    completion_requested = Signal()  # Ctrl+Space
    ghost_accepted = Signal(str)
    ghost_dismissed = Signal()
    loading_finished = Signal()
    #: Percentage of the file in the document while it loads (0-100).
    loading_progress = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._theme: Theme = LIGHT
        self._ghost: Ghost | None = None
        self._ghost_block: QTextBlock | None = None
        self._indent = "    "
        self._indent_width = 4
        self._in_key_handler = False
        self._gutter = _Gutter(self)
        self._gutter_margin = -1
        #: Lines of the file being loaded: the gutter is as wide as their numbers from the start,
        #: because widening it later re-lays out every line so far (150 ms at 100,000 lines).
        self._gutter_lines = 0
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setFont(self._monospace(11))
        self.blockCountChanged.connect(self._update_gutter_width)
        self.updateRequest.connect(self._update_gutter)
        self.cursorPositionChanged.connect(self._on_cursor_moved)
        self.document().contentsChange.connect(self._on_contents_change)
        self._update_gutter_width()
        self._on_cursor_moved()
        self._load_text = ""
        self._load_pos = 0
        self._shield = _Shield()
        self._load_timer = QTimer(self)
        self._load_timer.setInterval(0)
        self._load_timer.timeout.connect(self._load_next_chunk)
        self._load_rate = _FIRST_SLICE_CHARS / LOAD_SLICE_MS  # characters inserted per ms, measured
        self._load_refreshed = 0.0
        #: Keys pressed while a file loads, applied in order once it is complete.
        self._queued_keys: list[QKeyEvent] = []
        self._progress = QLabel(self)
        self._progress.setObjectName("loadingProgress")
        self._progress.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._progress.hide()

    # ------------------------------------------------------------- loading
    @property
    def loading(self) -> bool:
        """Part of a file is still to be added (the editor is read-only meanwhile)."""
        return self._load_timer.isActive()

    def load_text(self, text: str) -> None:
        """Replace the whole text as a freshly opened, unmodified file with no undo history.

        One ``setPlainText`` of 20 MB holds the event loop for seconds (Qt builds every
        block). The first ``LOAD_CHUNK_LINES`` lines go in at once and the rest follows in
        slices of ``LOAD_SLICE_MS``, sized by the measured insertion speed, with the view
        refreshed every ``LOAD_REFRESH_MS`` rather than after each slice. The document is
        read-only and its text incomplete until ``loading_finished``: keys pressed meanwhile
        are kept and applied in order at the end (``Loading… N %`` says so), and
        ``finish_loading`` completes the text at once for anyone who needs it now (saving).
        """
        self._load_timer.stop()
        shield = _Shield(text)
        text = shield.protect(text)
        document = self.document()
        document.setUndoRedoEnabled(False)
        first = _after_lines(text, 0, LOAD_CHUNK_LINES)
        self._gutter_lines = text.count("\n") + 1
        super().setPlainText(text[:first])
        self._shield = shield
        self._load_text, self._load_pos = text, first
        if first < len(text):
            self.setReadOnly(True)
            self._load_refreshed = time.perf_counter()
            self._load_timer.start()
            self._show_progress()
        else:
            self._end_loading()

    def setPlainText(self, text: str) -> None:  # noqa: N802 - Qt name, made exact (see _Shield)
        was_loading = self.loading
        self._load_timer.stop()  # the rest of a file still loading must not follow this text
        self._shield = _Shield(text)
        super().setPlainText(self._shield.protect(text))
        if was_loading:
            self._end_loading()

    def document_text(self) -> str:
        """The text exactly as it is, for saving and recovery (unlike ``toPlainText``).

        ``QTextDocument::toPlainText`` turns U+00A0 into a space and U+2028/U+2029 into
        ``\n``; the raw text only has U+2029 where a block (line) ends, so mapping those
        back, and the shield's stand-ins, gives exactly what was loaded plus the edits.
        A file still loading is completed first: this is never a partial text.
        """
        self.finish_loading()
        return self._shield.restore(self.document().toRawText().replace(_BLOCK_SEPARATOR, "\n"))

    def finish_loading(self) -> None:
        """Add whatever is still pending in one go."""
        if self.loading:
            self._load_timer.stop()
            self._append(len(self._load_text))
            self._end_loading()

    def _load_next_chunk(self) -> None:
        """Insert about ``LOAD_SLICE_MS`` worth of text, judged by the speed of the last slices."""
        started = time.perf_counter()
        start = self._load_pos
        end = self._slice_end(start, max(4096, int(self._load_rate * LOAD_SLICE_MS)))
        self._append(end)
        now = time.perf_counter()
        rate = (end - start) / max(0.5, (now - started) * 1000)
        self._load_rate = (self._load_rate + rate) / 2  # smooths out one slow (or fast) slice
        if self._load_pos >= len(self._load_text):
            self._load_timer.stop()
            self._end_loading()
        elif (now - self._load_refreshed) * 1000 >= LOAD_REFRESH_MS:
            self._load_refreshed = now
            self._refresh_view()
            self._show_progress()

    def _slice_end(self, start: int, size: int) -> int:
        """End of a slice of about ``size`` characters: after a newline when one is near.

        A cut between ``\r`` and ``\n`` would become two line breaks in Qt, so never there;
        a very long line is cut inside (the text stays exact: slices are appended in order).
        """
        text = self._load_text
        end = start + size
        if end >= len(text):
            return len(text)
        newline = text.find("\n", end, end + size)
        if newline >= 0:
            return newline + 1
        return end - 1 if text[end - 1] == "\r" else end

    def _append(self, end: int) -> None:
        """Add the text up to ``end`` below everything, without repainting anything yet.

        The layout's signals (repaint this, the document grew) would have the view repaint
        itself and the scroll bar after every slice, though what is visible has not
        changed; ``_refresh_view`` announces the growth in one go.
        """
        document = self.document()
        layout = document.documentLayout()
        cursor = QTextCursor(document)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        was_blocked = layout.blockSignals(True)
        try:
            cursor.insertText(self._load_text[self._load_pos : end])
        finally:
            layout.blockSignals(was_blocked)
        self._load_pos = end
        document.setModified(False)

    def _refresh_view(self) -> None:
        """Let the scroll bar, the text area and the gutter catch up with the grown document."""
        layout = self.document().documentLayout()
        layout.documentSizeChanged.emit(layout.documentSize())
        self.viewport().update()
        self._gutter.update()

    def _show_progress(self) -> None:
        """``Loading… N %`` in the corner, and how many keys wait to be applied."""
        total = len(self._load_text)
        if not self.loading or not total:
            self._progress.hide()
            return
        percent = min(99, self._load_pos * 100 // total)
        waiting = len(self._queued_keys)
        note = f" · {waiting} key{'s' if waiting != 1 else ''} waiting" if waiting else ""
        self._progress.setText(f"Loading… {percent} %{note}")
        self._progress.setStyleSheet(
            f"QLabel {{ background: {self._theme.gutter_bg}; color: {self._theme.foreground}; "
            f"border: 1px solid {self._theme.gutter_fg}; border-radius: 4px; padding: 2px 8px; }}"
        )
        self._progress.adjustSize()
        self._place_progress()
        self._progress.show()
        self._progress.raise_()
        self.loading_progress.emit(percent)

    def _place_progress(self) -> None:
        rect = self.viewport().geometry()
        self._progress.move(rect.right() - self._progress.width() - 16, rect.top() + 6)

    def _end_loading(self) -> None:
        self._load_text, self._load_pos = "", 0
        self._gutter_lines = 0
        self._update_gutter_width()
        self._refresh_view()
        self._progress.hide()
        self.document().setUndoRedoEnabled(True)  # history starts at the opened file
        self.document().setModified(False)
        self.setReadOnly(False)
        self._apply_queued_keys()
        self.loading_progress.emit(100)
        self.loading_finished.emit()

    def _apply_queued_keys(self) -> None:
        """Type what was typed during loading, in order, now that it can be an (undoable) edit."""
        queued, self._queued_keys = self._queued_keys, []
        for event in queued:
            self.keyPressEvent(event)
        if queued:
            self.ensureCursorVisible()

    # ------------------------------------------------------------ settings
    @staticmethod
    def _monospace(size: int) -> QFont:
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setPointSize(size)
        font.setStyleHint(QFont.StyleHint.Monospace)
        return font

    def set_font_size(self, size: int) -> None:
        self.setFont(self._monospace(size))
        self._update_gutter_width()

    def set_indentation(self, spaces: bool, width: int) -> None:
        self._indent = " " * width if spaces else "\t"
        self._indent_width = max(1, width)
        self.setTabStopDistance(self.fontMetrics().horizontalAdvance(" ") * width)

    def set_theme(self, theme: Theme) -> None:
        self._theme = theme
        self.setStyleSheet(
            f"QPlainTextEdit {{ background: {theme.background}; color: {theme.foreground}; "
            f"selection-background-color: {theme.bracket}; }}"
        )
        self._render_ghost()
        self._on_cursor_moved()
        self._gutter.update()

    # --------------------------------------------------------------- ghost
    @property
    def ghost(self) -> Ghost | None:
        return self._ghost

    def show_ghost(self, ghost: Ghost | None) -> None:
        """Show ``ghost`` at its position (or clear it with None)."""
        if ghost is not None and (not ghost.text or ghost.position != self.textCursor().position()):
            ghost = None
        self._ghost = ghost
        self._render_ghost()

    def clear_ghost(self) -> None:
        if self._ghost is not None:
            self._ghost = None
            self._render_ghost()

    def _render_ghost(self) -> None:
        document = self.document()
        if self._ghost_block is not None and self._ghost_block.isValid():
            old_layout = self._ghost_block.layout()
            old_layout.setPreeditArea(-1, "")
            ours = QTextFormat.Property.UserProperty
            old_layout.setFormats([f for f in old_layout.formats() if not f.format.hasProperty(ours)])
            document.markContentsDirty(self._ghost_block.position(), self._ghost_block.length())
        self._ghost_block = None
        if self._ghost is None:
            self.viewport().update()
            return
        block = document.findBlock(self._ghost.position)
        layout: QTextLayout = block.layout()
        column = self._ghost.position - block.position()
        text = self._ghost.text.replace("\n", _LINE_SEPARATOR)
        layout.setPreeditArea(column, text)
        fmt = QTextCharFormat()
        fmt.setForeground(QColor(self._theme.ghost))
        fmt.setFontItalic(True)
        fmt.setProperty(QTextFormat.Property.UserProperty, True)  # marks our range
        grey = QTextLayout.FormatRange()
        grey.start, grey.length, grey.format = column, len(text), fmt
        layout.setFormats([*layout.formats(), grey])
        document.markContentsDirty(block.position(), block.length())
        self._ghost_block = block
        self.viewport().update()

    def accept_ghost(self, part: str | None = None) -> bool:
        """Insert the whole ghost (or ``part`` of it) as one undo step."""
        ghost = self._ghost
        if ghost is None:
            return False
        text = ghost.text if part is None else part
        rest = ghost.without_prefix(text)
        self._ghost = None
        self._render_ghost()
        cursor = self.textCursor()
        cursor.beginEditBlock()
        self._in_key_handler = True
        try:
            cursor.insertText(text)
        finally:
            self._in_key_handler = False
        cursor.endEditBlock()
        self.setTextCursor(cursor)
        self.ghost_accepted.emit(text)
        if rest is not None:
            self.show_ghost(rest)
        return True

    # ------------------------------------------------------------ keyboard
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if self.loading:
            # Read-only until the file is complete: keep the key (a copy: Qt reuses the event)
            # and apply it, in order, at the end.
            copy = QKeyEvent(event.type(), event.key(), event.modifiers(), event.text(), event.isAutoRepeat())
            self._queued_keys.append(copy)
            event.accept()
            self._show_progress()
            return
        key, mods = event.key(), event.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
        ghost = self._ghost
        if ctrl and key == Qt.Key.Key_Space:
            self.completion_requested.emit()
            return
        if ghost is not None:
            if key == Qt.Key.Key_Tab and not ctrl and not shift:
                self.accept_ghost()
                return
            if key == Qt.Key.Key_Escape:
                self.clear_ghost()
                self.ghost_dismissed.emit()
                return
            if ctrl and key == Qt.Key.Key_Right:
                self.accept_ghost(ghost.next_word())
                return
            if ctrl and key == Qt.Key.Key_Down:
                self.accept_ghost(ghost.next_line())
                return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not ctrl:
            self._insert_newline_with_indent()
            return
        if (key == Qt.Key.Key_Backtab or (key == Qt.Key.Key_Tab and shift)) and not ctrl:
            self._shift_lines(indent=False)
            return
        if key == Qt.Key.Key_Tab and not ctrl:
            first, last = self._selected_lines()
            if last > first:
                self._shift_lines(indent=True)
            else:
                self.textCursor().insertText(self._indent)
            return
        typed = event.text()
        kept = ghost.after_typing(typed) if ghost is not None and typed and typed.isprintable() else None
        self._in_key_handler = kept is not None
        try:
            super().keyPressEvent(event)
        finally:
            self._in_key_handler = False
        if kept is not None and self.textCursor().position() == kept.position:
            self.show_ghost(kept)

    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: N802, A002 - Qt override
        """Tab and Shift+Tab indent and outdent here: they never move the focus away.

        Qt asks this before ``keyPressEvent`` for both keys; QPlainTextEdit already says no
        while it is editable, but not while it is read-only (a file loading), and its
        Shift+Tab then fell through to the window, which moved the focus to the toolbar.
        """
        if self.tabChangesFocus():
            return super().focusNextPrevChild(next)
        return False

    def _selected_lines(self) -> tuple[int, int]:
        """First and last block numbers of the lines the selection (or the caret) is on.

        A selection that ends at the very start of a line leaves that line out: that is
        what whole lines selected with Shift+Down look like.
        """
        cursor = self.textCursor()
        document = self.document()
        start, end = cursor.selectionStart(), cursor.selectionEnd()
        first, last = document.findBlock(start), document.findBlock(end)
        if end > start and end == last.position() and last.blockNumber() > first.blockNumber():
            last = last.previous()
        return first.blockNumber(), last.blockNumber()

    def _outdent_width(self, line: str) -> int:
        """Characters of leading indentation one outdent removes: a tab, or spaces back to the previous stop."""
        if line.startswith("\t"):
            return 1
        spaces = len(line) - len(line.lstrip(" "))
        return min(spaces, spaces % self._indent_width or self._indent_width)

    def _shift_lines(self, indent: bool) -> None:
        """Indent (or outdent) every selected line, or the caret's, as one undo step.

        Empty lines are not indented (that would only add trailing spaces). The anchor and
        the caret keep their place in the text of their lines, so the same lines stay
        selected; one at the start of a line stays there and so takes in the new indent.
        """
        document = self.document()
        cursor = self.textCursor()
        first, last = self._selected_lines()

        def line_and_column(position: int) -> tuple[int, int]:
            block = document.findBlock(position)
            return block.blockNumber(), position - block.position()

        anchor, caret = line_and_column(cursor.anchor()), line_and_column(cursor.position())
        changed: dict[int, int] = {}  # block number -> characters added (+) or removed (-) at its start
        edit = QTextCursor(document)
        edit.beginEditBlock()
        block = document.findBlockByNumber(first)
        for number in range(first, last + 1):
            text = block.text()
            if indent and text:
                edit.setPosition(block.position())
                edit.insertText(self._indent)
                changed[number] = len(self._indent)
            elif not indent and (width := self._outdent_width(text)):
                edit.setPosition(block.position())
                edit.setPosition(block.position() + width, QTextCursor.MoveMode.KeepAnchor)
                edit.removeSelectedText()
                changed[number] = -width
            block = block.next()
        edit.endEditBlock()
        if not changed:
            return

        def moved(number: int, column: int) -> int:
            delta = changed.get(number, 0)
            if delta > 0 and column > 0:
                column += delta
            elif delta < 0:
                column -= min(column, -delta)
            return document.findBlockByNumber(number).position() + column

        selection = QTextCursor(document)
        selection.setPosition(moved(*anchor))
        selection.setPosition(moved(*caret), QTextCursor.MoveMode.KeepAnchor)
        self.setTextCursor(selection)

    def _insert_newline_with_indent(self) -> None:
        cursor = self.textCursor()
        line = cursor.block().text()[: cursor.positionInBlock()]
        indent = line[: len(line) - len(line.lstrip())]
        if line.rstrip().endswith((":", "{", "(", "[")):
            indent += self._indent
        cursor.insertText("\n" + indent)
        self.setTextCursor(cursor)

    # ------------------------------------------------------- ghost upkeep
    def _on_contents_change(self, _position: int, _removed: int, _added: int) -> None:
        """Any edit not made while consuming the ghost invalidates it."""
        if self._ghost is not None and not self._in_key_handler:
            self._ghost = None
            self._ghost_block = None  # the block's layout is being rebuilt anyway
            self.viewport().update()

    def _on_cursor_moved(self) -> None:
        if self._ghost is not None and not self._in_key_handler:
            if self.textCursor().position() != self._ghost.position:
                self.clear_ghost()
        self._update_extra_selections()

    # --------------------------------------------- current line, brackets
    def _update_extra_selections(self) -> None:
        selections: list[QTextEdit.ExtraSelection] = []
        line = QTextEdit.ExtraSelection()
        line.format.setBackground(QColor(self._theme.current_line))
        line.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
        line.cursor = self.textCursor()
        line.cursor.clearSelection()
        selections.append(line)
        for position in self._matching_bracket_positions():
            sel = QTextEdit.ExtraSelection()
            sel.format.setBackground(QColor(self._theme.bracket))
            cursor = QTextCursor(self.document())
            cursor.setPosition(position)
            cursor.movePosition(QTextCursor.MoveOperation.NextCharacter, QTextCursor.MoveMode.KeepAnchor)
            sel.cursor = cursor
            selections.append(sel)
        self.setExtraSelections(selections)

    def _matching_bracket_positions(self) -> list[int]:
        document = self.document()
        position = self.textCursor().position()
        for at in (position - 1, position):
            if at < 0 or at >= document.characterCount() - 1:
                continue
            char = document.characterAt(at)
            if char in _BRACKETS:
                match = self._scan(at, char, _BRACKETS[char], +1)
            elif char in _CLOSING:
                match = self._scan(at, char, _CLOSING[char], -1)
            else:
                continue
            return [at, match] if match is not None else [at]
        return []

    def _scan(self, start: int, open_char: str, close_char: str, step: int) -> int | None:
        document = self.document()
        depth = 0
        end = document.characterCount() - 1
        position = start
        for _ in range(_BRACKET_SCAN_LIMIT):
            char = document.characterAt(position)
            if char == open_char:
                depth += 1
            elif char == close_char:
                depth -= 1
                if depth == 0:
                    return position
            position += step
            if position < 0 or position >= end:
                return None
        return None

    # ---------------------------------------------------------------- gutter
    def gutter_width(self) -> int:
        digits = max(3, len(str(max(1, self.blockCount(), self._gutter_lines))))
        return 14 + self.fontMetrics().horizontalAdvance("9") * digits

    def _update_gutter_width(self, _count: int = 0) -> None:
        """Make room for the line numbers when their width changes (not on every new line)."""
        width = self.gutter_width()
        if width != self._gutter_margin:
            self._gutter_margin = width
            self.setViewportMargins(width, 0, 0, 0)
            rect = self.contentsRect()
            self._gutter.setGeometry(QRect(rect.left(), rect.top(), width, rect.height()))

    def _update_gutter(self, rect: QRect, dy: int) -> None:
        if dy:
            self._gutter.scroll(0, dy)
        else:
            self._gutter.update(0, rect.y(), self._gutter.width(), rect.height())
        if rect.contains(self.viewport().rect()):
            self._update_gutter_width()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        rect = self.contentsRect()
        self._gutter.setGeometry(QRect(rect.left(), rect.top(), self.gutter_width(), rect.height()))
        self._place_progress()

    def paint_gutter(self, event: QPaintEvent) -> None:
        painter = QPainter(self._gutter)
        painter.fillRect(event.rect(), QColor(self._theme.gutter_bg))
        block = self.firstVisibleBlock()
        number = block.blockNumber()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        bottom = top + round(self.blockBoundingRect(block).height())
        current = self.textCursor().blockNumber()
        height = self.fontMetrics().height()
        while block.isValid() and top <= event.rect().bottom():
            if block.isVisible() and bottom >= event.rect().top():
                painter.setPen(QColor(self._theme.foreground if number == current else self._theme.gutter_fg))
                painter.drawText(0, top, self._gutter.width() - 8, height, Qt.AlignmentFlag.AlignRight, str(number + 1))
            block = block.next()
            top = bottom
            bottom = top + round(self.blockBoundingRect(block).height())
            number += 1
        painter.end()

    def visible_block_range(self) -> tuple[int, int]:
        first = self.firstVisibleBlock().blockNumber()
        lines = self.viewport().height() // max(1, self.fontMetrics().height())
        return first, first + lines + 1
