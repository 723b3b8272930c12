"""Find / Replace in the current file (Ctrl+F / Ctrl+H), for any ``QPlainTextEdit``.

A bar with a search field and toggles for **case-sensitive**, **whole word** and
**regex**, previous / next, the match count ("3 of 17"), and — in replace mode — a
replacement field with Replace and Replace All. Typing searches as you type from where the
caret was when the bar opened. An invalid regex (or a replacement that names a group the
regex lacks) is shown in the bar as an error; nothing is searched or replaced then.

Replace replaces the selected match and selects the next one (when the selection is not
a match it only goes to the next one, so you see what you replace). Replace All is **one
undo step**. In regex mode the replacement understands ``\\1`` and ``\\g<name>``; in plain
mode it is inserted as typed.

The search runs Python's ``re`` over the document's text (``^``/``$`` match at each line),
never over what the editor shows on top of it (ghost text is not in the document).
Document positions count UTF-16 units while Python counts code points; the two are mapped
(``_Utf16Map``) so an emoji before a match does not shift the selection. At most
``MAX_MATCHES`` matches are counted ("100,000+").

API (for the window; W1's tabs call ``set_editor`` on every tab change)::

    bar = FindBar(parent)
    bar.set_editor(editor)     # the QPlainTextEdit to search (None: nothing)
    bar.show_find()            # Ctrl+F: show, take a one-line selection as the term, focus the field
    bar.show_replace()         # Ctrl+H: the same with the replace row
    bar.find_next()            # F3 / Enter in the field
    bar.find_previous()        # Shift+F3 / Shift+Enter in the field
    bar.replace_one(); bar.replace_all()
    bar.close_bar()            # Esc in the bar: hide and give the editor the focus back
    bar.closed                 # Signal(): the bar was closed
    bar.state, bar.match_count, bar.current_match, bar.status_text()   # what the label says
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QTextCursor, QTextDocument
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QWidget,
)

log = logging.getLogger("starpad.find")

#: Matches counted at most; a count beyond this says "100,000+".
MAX_MATCHES = 100_000
#: After an edit in the document the count is brought up to date this long after typing stops.
RECOUNT_DELAY_MS = 200
_BLOCK_SEPARATOR = "\u2029"  # QTextDocument's line break in its raw text
_ASTRAL = re.compile("[\U00010000-\U0010FFFF]")  # characters that take two UTF-16 units


class SearchState(Enum):
    """What the bar's label shows."""

    EMPTY = "empty"  # no search term
    MATCHES = "matches"
    NO_MATCH = "no_match"
    INVALID = "invalid"  # the regex (or the replacement) does not compile


@dataclass(frozen=True)
class FindOptions:
    case_sensitive: bool = False
    whole_word: bool = False
    regex: bool = False


class SearchError(ValueError):
    """A search term or replacement that cannot be used; the message is for the user."""


def compile_search(term: str, options: FindOptions) -> re.Pattern[str]:
    """The pattern for ``term``: escaped unless regex, bounded by non-word characters for whole word.

    Raises SearchError (with a readable message) for an invalid regex.
    """
    body = term if options.regex else re.escape(term)
    if options.whole_word:
        # Look-arounds rather than \b: a term that starts or ends with punctuation still works.
        body = rf"(?<!\w)(?:{body})(?!\w)"
    flags = re.MULTILINE | (0 if options.case_sensitive else re.IGNORECASE)
    try:
        return re.compile(body, flags)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None and not options.whole_word else ""
        raise SearchError(f"Invalid regex: {exc.msg}{where}") from exc
    except (OverflowError, RecursionError) as exc:
        raise SearchError(f"Invalid regex: {exc}") from exc


def replacement_for(match: re.Match[str], template: str, options: FindOptions) -> str:
    """The text that replaces ``match``: ``template`` expanded (regex) or as typed (plain)."""
    if not options.regex:
        return template
    try:
        return match.expand(template)
    except (re.error, IndexError) as exc:
        raise SearchError(f"Invalid replacement: {exc}") from exc


class _Utf16Map:
    """Maps Python string indices (code points) to document positions (UTF-16 units) and back."""

    def __init__(self, text: str) -> None:
        # Nearly every text is all-BMP: then the table is empty and both counts are the same.
        self._astral: list[int] = [m.start() for m in _ASTRAL.finditer(text)]
        self._astral_u16 = [i + k for k, i in enumerate(self._astral)]

    def to_doc(self, index: int) -> int:
        return index + bisect.bisect_left(self._astral, index) if self._astral else index

    def to_text(self, position: int) -> int:
        return position - bisect.bisect_left(self._astral_u16, position) if self._astral else position


@dataclass
class _Search:
    """One search over one state of the document (dropped when either changes)."""

    text: str
    pattern: re.Pattern[str]
    spans: list[tuple[int, int]]  # code points
    starts: list[int]
    truncated: bool
    positions: _Utf16Map


def _document_text(document: QTextDocument) -> str:
    """The text as the cursor positions count it: one ``\\n`` per block break, nothing else changed."""
    return document.toRawText().replace(_BLOCK_SEPARATOR, "\n")


class FindBar(QWidget):
    """The find / replace bar; see the module docstring for the API."""

    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("findBar")
        self.find_field = QLineEdit(self)
        self.find_field.setPlaceholderText("Find")
        self.find_field.setClearButtonEnabled(True)
        self.replace_field = QLineEdit(self)
        self.replace_field.setPlaceholderText("Replace")
        self.case_button = self._toggle("Aa", "Match case")
        self.word_button = self._toggle("W", "Whole word")
        self.regex_button = self._toggle(".*", "Regular expression")
        self.count_label = QLabel(self)
        self.count_label.setMinimumWidth(110)
        self.previous_button = self._button("↑", "Previous match (Shift+F3)", self.find_previous)
        self.next_button = self._button("↓", "Next match (F3)", self.find_next)
        self.close_button = self._button("✕", "Close (Esc)", self.close_bar)
        self.replace_button = QPushButton("Replace", self)
        self.replace_button.clicked.connect(self.replace_one)
        self.replace_all_button = QPushButton("Replace All", self)
        self.replace_all_button.clicked.connect(self.replace_all)

        grid = QGridLayout(self)
        grid.setContentsMargins(6, 3, 6, 3)
        grid.setHorizontalSpacing(4)
        grid.setVerticalSpacing(3)
        find_row = QHBoxLayout()
        for widget in (self.case_button, self.word_button, self.regex_button, self.count_label,
                       self.previous_button, self.next_button, self.close_button):
            find_row.addWidget(widget)
        replace_row = QHBoxLayout()
        replace_row.addWidget(self.replace_button)
        replace_row.addWidget(self.replace_all_button)
        replace_row.addStretch(1)
        self._replace_row = (self.replace_field, self.replace_button, self.replace_all_button)
        grid.addWidget(self.find_field, 0, 0)
        grid.addLayout(find_row, 0, 1)
        grid.addWidget(self.replace_field, 1, 0)
        grid.addLayout(replace_row, 1, 1)
        grid.setColumnStretch(0, 1)

        self._editor: QPlainTextEdit | None = None
        self._search: _Search | None = None
        self._anchor = 0  # where search-as-you-type starts: the caret when the bar opened
        self.state = SearchState.EMPTY
        self.error: str | None = None
        self.match_count = 0
        #: 1-based number of the selected match, or None when the selection is not a match.
        self.current_match: int | None = None
        self._recount = QTimer(self)
        self._recount.setSingleShot(True)
        self._recount.setInterval(RECOUNT_DELAY_MS)
        self._recount.timeout.connect(self._refresh_label)

        self.find_field.textChanged.connect(lambda _text: self._on_term_changed())
        for button in (self.case_button, self.word_button, self.regex_button):
            button.toggled.connect(lambda _on: self._on_term_changed())
        self.replace_field.textChanged.connect(lambda _text: self._refresh_label())
        self.find_field.installEventFilter(self)
        self.replace_field.installEventFilter(self)
        self._set_replace_visible(False)
        self.hide()
        self._refresh_label()

    def _toggle(self, text: str, tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.setCheckable(True)
        button.setAutoRaise(True)
        return button

    def _button(self, text: str, tip: str, slot: Callable[[], object]) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        button.clicked.connect(lambda _checked=False: slot())
        return button

    # ---------------------------------------------------------------- API
    def editor(self) -> QPlainTextEdit | None:
        return self._editor

    def set_editor(self, editor: QPlainTextEdit | None) -> None:
        """Search ``editor`` from now on (the current tab's); None leaves nothing to search."""
        if editor is self._editor:
            return
        if self._editor is not None:
            try:
                self._editor.document().contentsChanged.disconnect(self._on_document_changed)
                self._editor.destroyed.disconnect(self._on_editor_destroyed)
            except (RuntimeError, TypeError):  # already gone with its editor
                pass
        self._editor = editor
        self._search = None
        if editor is not None:
            editor.document().contentsChanged.connect(self._on_document_changed)
            editor.destroyed.connect(self._on_editor_destroyed)
            self._anchor = editor.textCursor().selectionStart()
        self._refresh_label()

    def options(self) -> FindOptions:
        return FindOptions(self.case_button.isChecked(), self.word_button.isChecked(), self.regex_button.isChecked())

    def set_options(
        self, *, case_sensitive: bool | None = None, whole_word: bool | None = None, regex: bool | None = None
    ) -> None:
        for button, value in ((self.case_button, case_sensitive), (self.word_button, whole_word),
                              (self.regex_button, regex)):
            if value is not None:
                button.setChecked(value)

    def replace_visible(self) -> bool:
        return not self.replace_field.isHidden()

    def show_find(self) -> None:
        """Ctrl+F: show the bar (without the replace row) with the selection as the term."""
        self._open(replace=False)

    def show_replace(self) -> None:
        """Ctrl+H: show the bar with the replace row."""
        self._open(replace=True)

    def close_bar(self) -> None:
        self.hide()
        if self._editor is not None:
            self._editor.setFocus(Qt.FocusReason.OtherFocusReason)
        self.closed.emit()

    def status_text(self) -> str:
        return self.count_label.text()

    def find_next(self) -> bool:
        """Select the next match after the selection (wrapping around); False when there is none."""
        return self._step(forward=True)

    def find_previous(self) -> bool:
        return self._step(forward=False)

    def replace_one(self) -> bool:
        """Replace the selected match and select the next; with no match selected, go to the next one."""
        editor, search = self._editor, self._current_search()
        if editor is None or search is None or not self._writable(editor):
            return False
        span = self._selected_span(search)
        if span is None:
            return self.find_next()
        found = next((m for m in search.pattern.finditer(search.text, span[0]) if m.span() == span), None)
        if found is None:
            return self.find_next()
        try:
            text = replacement_for(found, self.replace_field.text(), self.options())
        except SearchError as exc:
            self._show_error(str(exc))
            return False
        cursor = editor.textCursor()
        cursor.beginEditBlock()
        cursor.setPosition(search.positions.to_doc(span[0]))
        cursor.setPosition(search.positions.to_doc(span[1]), QTextCursor.MoveMode.KeepAnchor)
        cursor.insertText(text)
        cursor.endEditBlock()
        editor.setTextCursor(cursor)
        after = span[0] + len(text)
        search = self._current_search()
        if search is not None:
            self._select_first(search, after, strictly_after=span[0] == span[1] and not text)
        self._refresh_label()
        return True

    def replace_all(self) -> int:
        """Replace every match as one undo step; returns how many were replaced."""
        editor, search = self._editor, self._current_search()
        if editor is None or search is None or not self._writable(editor):
            return 0
        template, options = self.replace_field.text(), self.options()
        try:
            # Every replacement is worked out before the document is touched: a bad group
            # reference stops here with the text unchanged, never halfway.
            edits = [(m.start(), m.end(), replacement_for(m, template, options))
                     for m in search.pattern.finditer(search.text)]
        except SearchError as exc:
            self._show_error(str(exc))
            return 0
        if not edits:
            return 0
        to_doc = search.positions.to_doc
        cursor = QTextCursor(editor.document())
        cursor.beginEditBlock()
        for start, end, text in reversed(edits):  # from the end, so earlier positions stay valid
            cursor.setPosition(to_doc(start))
            cursor.setPosition(to_doc(end), QTextCursor.MoveMode.KeepAnchor)
            cursor.insertText(text)
        cursor.endEditBlock()
        log.info("replaced %d matches", len(edits))
        self._refresh_label()
        self.count_label.setText(f"Replaced {len(edits):,}")
        return len(edits)

    # ----------------------------------------------------------- internals
    def _open(self, replace: bool) -> None:
        editor = self._editor
        if editor is not None:
            cursor = editor.textCursor()
            selected = cursor.selectedText()
            if selected and _BLOCK_SEPARATOR not in selected:
                self.find_field.blockSignals(True)
                self.find_field.setText(re.escape(selected) if self.regex_button.isChecked() else selected)
                self.find_field.blockSignals(False)
                self._search = None
            self._anchor = cursor.selectionStart()
        self._set_replace_visible(replace)
        self.show()
        field = self.replace_field if replace and self.find_field.text() else self.find_field
        field.setFocus(Qt.FocusReason.ShortcutFocusReason)
        field.selectAll()
        self._refresh_label()

    def _set_replace_visible(self, visible: bool) -> None:
        for widget in self._replace_row:
            widget.setVisible(visible)

    def _writable(self, editor: QPlainTextEdit) -> bool:
        if editor.isReadOnly():
            self.count_label.setText("The text is read-only")
            return False
        return True

    def _on_editor_destroyed(self) -> None:
        self._editor = None
        self._search = None
        self._refresh_label()

    def _on_document_changed(self) -> None:
        self._search = None
        if self.isVisible():
            self._recount.start()

    def _on_term_changed(self) -> None:
        """Search as you type: select the first match at or after where the search started."""
        self._search = None
        search = self._current_search()
        if search is not None and self._editor is not None:
            self._select_first(search, search.positions.to_text(self._anchor))
        self._refresh_label()

    def _current_search(self) -> _Search | None:
        """The search for the current term, options and text (None with no term or an error)."""
        if self._search is not None:
            return self._search
        term = self.find_field.text()
        self.error = None
        if self._editor is None or not term:
            return None
        try:
            pattern = compile_search(term, self.options())
        except SearchError as exc:
            self.error = str(exc)
            return None
        text = _document_text(self._editor.document())
        spans: list[tuple[int, int]] = []
        truncated = False
        for found in pattern.finditer(text):
            if len(spans) >= MAX_MATCHES:
                truncated = True
                break
            spans.append(found.span())
        self._search = _Search(text, pattern, spans, [s for s, _ in spans], truncated, _Utf16Map(text))
        return self._search

    def _selected_span(self, search: _Search) -> tuple[int, int] | None:
        """The selection as a match span (code points) when it is exactly a match, else None."""
        assert self._editor is not None
        cursor = self._editor.textCursor()
        span = (search.positions.to_text(cursor.selectionStart()), search.positions.to_text(cursor.selectionEnd()))
        i = bisect.bisect_left(search.starts, span[0])
        while i < len(search.spans) and search.spans[i][0] == span[0]:
            if search.spans[i] == span:
                return span
            i += 1
        return None

    def _step(self, forward: bool) -> bool:
        search = self._current_search()
        if search is None or self._editor is None:
            self._refresh_label()
            return False
        if not search.spans:
            self._refresh_label()
            return False
        cursor = self._editor.textCursor()
        start = search.positions.to_text(cursor.selectionStart())
        end = search.positions.to_text(cursor.selectionEnd())
        spans = search.spans
        if forward:
            # The first match that starts after the selection's start (or there, but reaches further).
            i = bisect.bisect_left(search.starts, start)
            while i < len(spans) and spans[i][0] == start and spans[i][1] <= end:
                i += 1
            target = spans[i] if i < len(spans) else spans[0]
        else:
            i = bisect.bisect_left(search.starts, start) - 1
            j = i + 1  # a match at the same start but shorter than the selection comes before it
            while j < len(spans) and spans[j][0] == start and spans[j][1] < end:
                i = j
                j += 1
            target = spans[i] if i >= 0 else spans[-1]
        self._select(search, target)
        self._refresh_label()
        return True

    def _select_first(self, search: _Search, start: int, strictly_after: bool = False) -> None:
        """Select the first match at (or after) ``start``, wrapping to the first; clear when none."""
        i = bisect.bisect_right(search.starts, start) if strictly_after else bisect.bisect_left(search.starts, start)
        if search.spans:
            self._select(search, search.spans[i] if i < len(search.spans) else search.spans[0])
        elif self._editor is not None:
            cursor = self._editor.textCursor()
            cursor.setPosition(min(self._anchor, self._editor.document().characterCount() - 1))
            self._editor.setTextCursor(cursor)

    def _select(self, search: _Search, span: tuple[int, int]) -> None:
        assert self._editor is not None
        cursor = self._editor.textCursor()
        cursor.setPosition(search.positions.to_doc(span[0]))
        cursor.setPosition(search.positions.to_doc(span[1]), QTextCursor.MoveMode.KeepAnchor)
        self._editor.setTextCursor(cursor)
        self._editor.ensureCursorVisible()

    def _show_error(self, message: str) -> None:
        self.state = SearchState.INVALID
        self.error = message
        self.count_label.setText(message)
        self.count_label.setStyleSheet("color: #cf222e;")

    def _refresh_label(self) -> None:
        """Bring the state, the count and "N of M" up to date with the term, options and text."""
        self.error = None  # a replacement error lasts until the next change
        search = self._current_search()
        self.match_count, self.current_match = 0, None
        if self.error is not None:
            self._show_error(self.error)
            return
        self.count_label.setStyleSheet("")
        if search is None:
            self.state = SearchState.EMPTY
            self.count_label.setText("")
            return
        if not search.spans:
            self.state = SearchState.NO_MATCH
            self.count_label.setText("No results")
            self.count_label.setStyleSheet("color: #cf222e;")
            return
        self.state = SearchState.MATCHES
        self.match_count = len(search.spans)
        total = f"{self.match_count:,}{'+' if search.truncated else ''}"
        span = self._selected_span(search)
        if span is not None:
            self.current_match = bisect.bisect_left(search.spans, span) + 1
            self.count_label.setText(f"{self.current_match:,} of {total}")
        else:
            self.count_label.setText(f"{total} match{'es' if self.match_count != 1 else ''}")

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.KeyPress and watched in (self.find_field, self.replace_field):
            assert isinstance(event, QKeyEvent)
            key = event.key()
            shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            if key == Qt.Key.Key_Escape:
                self.close_bar()
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                if watched is self.replace_field:
                    self.replace_one()
                elif shift:
                    self.find_previous()
                else:
                    self.find_next()
                return True
            if key == Qt.Key.Key_F3:
                self._step(forward=not shift)
                return True
        return super().eventFilter(watched, event)
