"""Go to line (Ctrl+G): type ``line`` or ``line:column``, Enter moves the caret there.

A small bar-like popup over the editor's top edge: a field (prefilled with the current
line, selected, so typing replaces it), and a hint with the document's line range. Line
and column are 1-based; a column counts characters of the line (an emoji is one). Numbers
past the end are clamped to the document (line 9999 in a 40-line file goes to line 40; a
column past the line's end goes to its end), and the caret's line is centred. Text that
is not a position (``abc``, ``12:x``) is shown as an error in the hint; the caret stays.
``L,C`` and ``L C`` are accepted as well as ``L:C``; a negative line counts from the end
(``-1`` is the last line).

API (for the window; W1's tabs call ``set_editor`` on every tab change)::

    goto = GotoLine(parent)
    goto.set_editor(editor)          # the QPlainTextEdit to move in
    goto.popup()                     # Ctrl+G
    goto.jumped                      # Signal(int, int): line and column (1-based) the caret went to

    parse_target("12:5")             # (12, 5); (12, None); raises ValueError with a message
    go_to(editor, line, column)      # the clamped move itself; returns the (line, column) reached
"""

from __future__ import annotations

import logging
import re

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, Signal
from PySide6.QtGui import QKeyEvent, QTextCursor
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QWidget

log = logging.getLogger("starpad.goto")

_TARGET = re.compile(r"^\s*(-?\d+)\s*(?:[:,\s]\s*(\d+))?\s*$")


def parse_target(text: str) -> tuple[int, int | None]:
    """``"12"`` → (12, None); ``"12:5"`` / ``"12,5"`` / ``"12 5"`` → (12, 5). Raises ValueError for anything else."""
    found = _TARGET.match(text)
    if found is None:
        raise ValueError(f"“{text.strip()}” is not a line number: type a line, or line:column")
    line = int(found.group(1))
    column = int(found.group(2)) if found.group(2) is not None else None
    return line, column


def go_to(editor: QPlainTextEdit, line: int, column: int | None = None) -> tuple[int, int]:
    """Put the caret at ``line``:``column`` (1-based, clamped to the document), centre it; returns where.

    Line 0 or less than ``-count`` clamps to the first line; a negative line counts from the end.
    Without a column the caret goes to the line's start.
    """
    document = editor.document()
    count = document.blockCount()
    if line < 0:
        line = count + 1 + line
    line = max(1, min(count, line))
    block = document.findBlockByNumber(line - 1)
    text = block.text()
    wanted = max(1, column if column is not None else 1)
    chars = min(len(text), wanted - 1)  # characters before the caret
    offset = len(text[:chars].encode("utf-16-le")) // 2  # the document counts UTF-16 units
    cursor = QTextCursor(block)
    cursor.setPosition(block.position() + offset)
    editor.setTextCursor(cursor)
    editor.centerCursor()
    return line, chars + 1


class GotoLine(QFrame):
    """The Ctrl+G popup; see the module docstring for the API."""

    jumped = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("gotoLine")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.field = QLineEdit(self)
        self.field.setMinimumWidth(160)
        self.hint = QLabel(self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(QLabel("Go to line:", self))
        layout.addWidget(self.field)
        layout.addWidget(self.hint)
        self._editor: QPlainTextEdit | None = None
        self.field.installEventFilter(self)
        self.field.textChanged.connect(lambda _text: self._validate())

    def editor(self) -> QPlainTextEdit | None:
        return self._editor

    def set_editor(self, editor: QPlainTextEdit | None) -> None:
        self._editor = editor

    def popup(self) -> None:
        """Show over the editor's top centre with the current line selected in the field."""
        editor = self._editor
        if editor is None:
            return
        self.field.setText(str(editor.textCursor().blockNumber() + 1))
        self.field.selectAll()
        self._validate()
        self.adjustSize()
        self.move(editor.mapToGlobal(QPoint(max(0, (editor.width() - self.width()) // 2), 0)))
        self.show()
        self.raise_()
        self.activateWindow()
        self.field.setFocus(Qt.FocusReason.PopupFocusReason)

    def accept(self) -> bool:
        """Go where the field says; False (with the error in the hint, the caret unmoved) when it cannot."""
        editor = self._editor
        if editor is None:
            return False
        try:
            line, column = parse_target(self.field.text())
        except ValueError as exc:
            self._set_hint(str(exc), error=True)
            return False
        reached = go_to(editor, line, column)
        log.debug("went to %d:%d", *reached)
        self.hide()
        editor.setFocus(Qt.FocusReason.OtherFocusReason)
        self.jumped.emit(*reached)
        return True

    def _range_text(self) -> str:
        count = self._editor.document().blockCount() if self._editor is not None else 0
        return f"1–{count:,}, or line:column"

    def _validate(self) -> None:
        text = self.field.text()
        if not text.strip():
            self._set_hint(self._range_text(), error=False)
            return
        try:
            parse_target(text)
        except ValueError as exc:
            self._set_hint(str(exc), error=True)
            return
        self._set_hint(self._range_text(), error=False)

    def _set_hint(self, text: str, error: bool) -> None:
        self.hint.setText(text)
        self.hint.setStyleSheet("color: #cf222e;" if error else "")
        self.hint.setProperty("error", error)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self.field and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.accept()
                return True
            if event.key() == Qt.Key.Key_Escape:
                self.hide()
                if self._editor is not None:
                    self._editor.setFocus(Qt.FocusReason.OtherFocusReason)
                return True
        return super().eventFilter(watched, event)
