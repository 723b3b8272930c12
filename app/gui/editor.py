"""The code editor: QPlainTextEdit with a gutter, bracket matching and ghost text.

Ghost text is drawn as a QTextLayout pre-edit area (the mechanism input methods use):
Qt lays it out inline — multi-line via U+2028 line separators — and pushes the rest of
the line and the lines below out of the way, yet it is never part of the document, so
it cannot be saved, copied or undone by accident. Only an accept inserts it, as one
undo step.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QKeyEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
    QTextLayout,
)
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QWidget

from app.core.ghost import Ghost
from app.gui.theme import LIGHT, Theme

log = logging.getLogger("starpad.editor")

_BRACKETS = {"(": ")", "[": "]", "{": "}"}
_CLOSING = {v: k for k, v in _BRACKETS.items()}
_LINE_SEPARATOR = "\u2028"
_BRACKET_SCAN_LIMIT = 20_000
#: Files are put into the document this many lines per event-loop turn (~5 ms each).
LOAD_CHUNK_LINES = 600


def _after_lines(text: str, start: int, n_lines: int) -> int:
    """Offset just past the ``n_lines``-th newline from ``start`` (or the end of ``text``)."""
    pos = start
    for _ in range(n_lines):
        pos = text.find("\n", pos) + 1
        if pos == 0:
            return len(text)
    return pos


class _Gutter(QWidget):
    def __init__(self, editor: "CodeEditor") -> None:
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

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._theme: Theme = LIGHT
        self._ghost: Ghost | None = None
        self._ghost_block = None
        self._indent = "    "
        self._in_key_handler = False
        self._gutter = _Gutter(self)
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
        self._load_timer = QTimer(self)
        self._load_timer.setInterval(0)
        self._load_timer.timeout.connect(self._load_next_chunk)

    # ------------------------------------------------------------- loading
    @property
    def loading(self) -> bool:
        """Part of a file is still to be added (the editor is read-only meanwhile)."""
        return self._load_timer.isActive()

    def load_text(self, text: str) -> None:
        """Replace the whole text as a freshly opened, unmodified file with no undo history.

        One ``setPlainText`` of 5,000 lines holds the event loop for 30-50 ms (Qt builds
        every block, the highlighter is called for each). The first screenful goes in at
        once and the rest follows in slices of ``LOAD_CHUNK_LINES`` lines, so the window
        repaints and the heartbeat never waits long. The document is read-only and its
        text incomplete until ``loading_finished``; ``finish_loading`` completes it at once
        for anyone who needs the whole text now (saving).
        """
        self._load_timer.stop()
        document = self.document()
        document.setUndoRedoEnabled(False)
        first = _after_lines(text, 0, LOAD_CHUNK_LINES)
        self.setPlainText(text[:first])
        self._load_text, self._load_pos = text, first
        if first < len(text):
            self.setReadOnly(True)
            self._load_timer.start()
        else:
            self._end_loading()

    def finish_loading(self) -> None:
        """Add whatever is still pending in one go."""
        if self.loading:
            self._load_timer.stop()
            self._append(len(self._load_text))
            self._end_loading()

    def _load_next_chunk(self) -> None:
        self._append(_after_lines(self._load_text, self._load_pos, LOAD_CHUNK_LINES))
        if self._load_pos >= len(self._load_text):
            self._load_timer.stop()
            self._end_loading()

    def _append(self, end: int) -> None:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(self._load_text[self._load_pos : end])
        self._load_pos = end
        self.document().setModified(False)

    def _end_loading(self) -> None:
        self._load_text, self._load_pos = "", 0
        self.document().setUndoRedoEnabled(True)  # history starts at the opened file
        self.document().setModified(False)
        self.setReadOnly(False)
        self.loading_finished.emit()

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
            layout = self._ghost_block.layout()
            layout.setPreeditArea(-1, "")
            layout.setFormats([f for f in layout.formats() if not f.format.hasProperty(QTextFormat.Property.UserProperty)])
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
        key, mods = event.key(), event.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        ghost = self._ghost
        if ctrl and key == Qt.Key.Key_Space:
            self.completion_requested.emit()
            return
        if ghost is not None:
            if key == Qt.Key.Key_Tab and not ctrl:
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
        if key == Qt.Key.Key_Tab and not ctrl:
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
        digits = max(3, len(str(max(1, self.blockCount()))))
        return 14 + self.fontMetrics().horizontalAdvance("9") * digits

    def _update_gutter_width(self, _count: int = 0) -> None:
        self.setViewportMargins(self.gutter_width(), 0, 0, 0)

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
