"""Go to line (app.gui.goto_line): parsing, clamping to the document, centring, the keyboard flow."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QPlainTextEdit

from app.gui.goto_line import GotoLine, go_to, parse_target


def _editor(qtbot, lines: int = 10) -> QPlainTextEdit:
    editor = QPlainTextEdit()
    qtbot.addWidget(editor)
    editor.setPlainText("\n".join(f"line {i} text" for i in range(1, lines + 1)))
    return editor


def _caret(editor: QPlainTextEdit) -> tuple[int, int]:
    cursor = editor.textCursor()
    return cursor.blockNumber() + 1, cursor.positionInBlock() + 1


@pytest.mark.parametrize(("text", "expected"), [
    ("12", (12, None)), (" 12:5 ", (12, 5)), ("12,5", (12, 5)), ("12 5", (12, 5)), ("-1", (-1, None)),
    ("0", (0, None)),
])
def test_parse_target(text: str, expected: tuple[int, int | None]) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "12:x", "1:2:3", "1.5", ":4", "12:-3"])
def test_parse_target_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="is not a line number"):
        parse_target(text)


def test_go_to_clamps_to_the_document(qtbot) -> None:
    editor = _editor(qtbot)  # 10 lines of "line N text"
    assert go_to(editor, 3, 6) == (3, 6) and _caret(editor) == (3, 6)
    assert go_to(editor, 999) == (10, 1) and _caret(editor) == (10, 1)
    assert go_to(editor, 0, 0) == (1, 1) and _caret(editor) == (1, 1)
    assert go_to(editor, 4, 500) == (4, 12) and _caret(editor) == (4, 12)  # past "line 4 text": its end
    assert go_to(editor, -1) == (10, 1)  # from the end
    assert go_to(editor, -50) == (1, 1)
    assert not editor.textCursor().hasSelection()


def test_columns_count_characters_not_utf16_units(qtbot) -> None:
    editor = QPlainTextEdit()
    qtbot.addWidget(editor)
    editor.setPlainText("first\n🐍🐍x = 1\n")
    assert go_to(editor, 2, 3) == (2, 3)
    cursor = editor.textCursor()
    cursor.movePosition(QTextCursor.MoveOperation.Right, QTextCursor.MoveMode.KeepAnchor)
    assert cursor.selectedText() == "x"


def test_the_line_goes_to_the_middle_of_the_view(qtbot) -> None:
    editor = _editor(qtbot, lines=400)
    editor.resize(400, 300)
    editor.show()
    qtbot.waitExposed(editor)
    go_to(editor, 200)
    middle = editor.viewport().height() / 2
    line_height = editor.fontMetrics().height()
    assert abs(editor.cursorRect().center().y() - middle) <= 2 * line_height
    assert editor.verticalScrollBar().value() > 0


def test_keyboard_flow(qtbot) -> None:
    editor = _editor(qtbot)
    goto = GotoLine()
    qtbot.addWidget(goto)
    goto.set_editor(editor)
    go_to(editor, 2)
    goto.popup()
    assert goto.isVisible() and goto.field.text() == "2" and goto.field.selectedText() == "2"
    assert goto.hint.text() == "1–10, or line:column"
    qtbot.keyClicks(goto.field, "7:3")  # replaces the selected "2"
    with qtbot.waitSignal(goto.jumped, timeout=1000) as blocker:
        qtbot.keyClick(goto.field, Qt.Key.Key_Return)
    assert blocker.args == [7, 3] and _caret(editor) == (7, 3) and not goto.isVisible()


def test_bad_text_shows_an_error_and_leaves_the_caret(qtbot) -> None:
    editor = _editor(qtbot)
    goto = GotoLine()
    qtbot.addWidget(goto)
    goto.set_editor(editor)
    go_to(editor, 5, 2)
    goto.popup()
    qtbot.keyClicks(goto.field, "five")
    assert goto.hint.property("error") is True and "is not a line number" in goto.hint.text()
    with qtbot.assertNotEmitted(goto.jumped):
        qtbot.keyClick(goto.field, Qt.Key.Key_Return)
    assert goto.isVisible() and _caret(editor) == (5, 2)
    qtbot.keyClick(goto.field, Qt.Key.Key_Escape)
    assert not goto.isVisible() and _caret(editor) == (5, 2)


def test_without_an_editor_nothing_happens(qtbot) -> None:
    goto = GotoLine()
    qtbot.addWidget(goto)
    goto.popup()
    assert not goto.isVisible() and not goto.accept()
