"""Find / Replace (app.gui.find_bar): options, counts, wrap-around, replace as one undo step, bad input."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QPlainTextEdit

from app.gui.find_bar import FindBar, FindOptions, SearchError, SearchState, compile_search

TEXT = "foo Foo food\nbar foo\nfoo_bar = 1\n"


def _setup(qtbot, text: str = TEXT) -> tuple[QPlainTextEdit, FindBar]:
    editor = QPlainTextEdit()
    editor.setPlainText(text)
    bar = FindBar()
    qtbot.addWidget(editor)
    qtbot.addWidget(bar)
    bar.set_editor(editor)
    return editor, bar


def _selection(editor: QPlainTextEdit) -> tuple[int, int]:
    cursor = editor.textCursor()
    return cursor.selectionStart(), cursor.selectionEnd()


def test_options_change_what_matches(qtbot) -> None:
    editor, bar = _setup(qtbot)
    bar.show_find()
    qtbot.keyClicks(bar.find_field, "foo")
    assert bar.state is SearchState.MATCHES and bar.match_count == 5
    assert bar.status_text() == "1 of 5" and _selection(editor) == (0, 3)
    bar.set_options(whole_word=True)  # not "food", not "foo_bar"
    assert bar.match_count == 3
    bar.set_options(case_sensitive=True)  # not "Foo"
    assert bar.match_count == 2
    bar.set_options(case_sensitive=False, whole_word=False, regex=True)
    bar.find_field.setText(r"fo+d|^bar")
    assert bar.match_count == 2  # "food", and "bar" at a line start only
    assert editor.toPlainText() == TEXT


def test_next_and_previous_wrap_around(qtbot) -> None:
    editor, bar = _setup(qtbot)
    bar.show_find()
    bar.set_options(whole_word=True)
    qtbot.keyClicks(bar.find_field, "foo")
    assert bar.current_match == 1
    assert bar.find_next() and bar.current_match == 2 and _selection(editor) == (4, 7)
    assert bar.find_next() and bar.current_match == 3
    assert bar.find_next() and bar.current_match == 1  # wrapped
    assert bar.find_previous() and bar.current_match == 3  # wrapped back
    qtbot.keyClick(bar.find_field, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert bar.current_match == 2
    qtbot.keyClick(bar.find_field, Qt.Key.Key_Return)
    assert bar.current_match == 3 and bar.status_text() == "3 of 3"


def test_search_starts_at_the_caret_and_a_moved_caret_is_not_a_match(qtbot) -> None:
    editor, bar = _setup(qtbot)
    cursor = editor.textCursor()
    cursor.setPosition(TEXT.index("bar"))
    editor.setTextCursor(cursor)
    bar.show_find()
    qtbot.keyClicks(bar.find_field, "foo")
    assert _selection(editor) == (17, 20) and bar.status_text() == "4 of 5"
    cursor.setPosition(0)
    editor.setTextCursor(cursor)
    bar.find_previous()  # nothing before the caret: wraps to the last match
    assert bar.current_match == 5


def test_invalid_regex_is_an_error_message_not_an_exception(qtbot) -> None:
    editor, bar = _setup(qtbot)
    bar.show_find()
    bar.set_options(regex=True)
    qtbot.keyClicks(bar.find_field, "fo(o")
    assert bar.state is SearchState.INVALID
    assert bar.status_text().startswith("Invalid regex: missing ), unterminated subpattern")
    assert not bar.find_next() and bar.replace_all() == 0 and not bar.replace_one()
    assert editor.toPlainText() == TEXT
    bar.find_field.setText("fo(o)")
    assert bar.state is SearchState.MATCHES and bar.error is None


def test_compile_search_options() -> None:
    assert compile_search("a.b", FindOptions()).pattern == r"a\.b"
    with pytest.raises(SearchError, match="Invalid regex"):
        compile_search("[", FindOptions(regex=True))
    whole = compile_search("x+", FindOptions(whole_word=True))
    assert [m.span() for m in whole.finditer("x+ ax+ x+y x+")] == [(0, 2), (11, 13)]


def test_replace_all_is_one_undo_step(qtbot) -> None:
    editor, bar = _setup(qtbot)
    bar.show_replace()
    assert bar.replace_visible()
    bar.set_options(whole_word=True)
    bar.find_field.setText("foo")
    bar.replace_field.setText("baz")
    assert bar.replace_all() == 3
    assert editor.toPlainText() == "baz baz food\nbar baz\nfoo_bar = 1\n"
    editor.undo()  # one undo takes back every replacement
    assert editor.toPlainText() == TEXT and not editor.document().isUndoAvailable()
    qtbot.waitUntil(lambda: bar.match_count == 3, timeout=2000)  # recounted after the edit


def test_regex_replace_uses_groups_and_a_bad_group_changes_nothing(qtbot) -> None:
    editor, bar = _setup(qtbot, "a=1\nb=22\n")
    bar.show_replace()
    bar.set_options(regex=True)
    bar.find_field.setText(r"(\w)=(\d+)")
    bar.replace_field.setText(r"\3")
    assert bar.replace_all() == 0
    assert bar.state is SearchState.INVALID and bar.status_text().startswith("Invalid replacement")
    assert editor.toPlainText() == "a=1\nb=22\n" and not editor.document().isUndoAvailable()
    bar.replace_field.setText(r"\2=\g<1>")
    assert bar.state is SearchState.MATCHES  # the error went with the bad template
    assert bar.replace_all() == 2
    assert editor.toPlainText() == "1=a\n22=b\n"


def test_plain_replacement_is_inserted_as_typed(qtbot) -> None:
    editor, bar = _setup(qtbot, "x x")
    bar.show_replace()
    bar.find_field.setText("x")
    bar.replace_field.setText(r"\1 $0 \n")
    assert bar.replace_all() == 2
    assert editor.toPlainText() == r"\1 $0 \n \1 $0 \n"


def test_replace_one_replaces_the_selected_match_then_selects_the_next(qtbot) -> None:
    editor, bar = _setup(qtbot, "cat cat cat")
    cursor = editor.textCursor()
    cursor.setPosition(2)
    editor.setTextCursor(cursor)
    bar.show_replace()
    bar.find_field.setText("cat")  # selects the first match after the caret: the second "cat"
    bar.replace_field.setText("dog")
    assert _selection(editor) == (4, 7)
    assert bar.replace_one()
    assert editor.toPlainText() == "cat dog cat" and _selection(editor) == (8, 11)
    qtbot.keyClick(bar.replace_field, Qt.Key.Key_Return)  # Enter in the replace field replaces one
    assert editor.toPlainText() == "cat dog dog" and _selection(editor) == (0, 3)
    # The selection is not a match any more: the first press only selects the next match.
    cursor.setPosition(5)
    editor.setTextCursor(cursor)
    bar.set_options(case_sensitive=True)
    bar.find_field.setText("dog")
    editor.setTextCursor(cursor)
    assert bar.replace_one() and editor.toPlainText() == "cat dog dog" and _selection(editor) == (8, 11)
    editor.undo()  # each replacement is one step
    assert editor.toPlainText() == "cat dog cat"
    editor.undo()
    assert editor.toPlainText() == "cat cat cat" and not editor.document().isUndoAvailable()


def test_a_growing_replacement_is_not_matched_again(qtbot) -> None:
    editor, bar = _setup(qtbot, "a a")
    bar.show_replace()
    bar.find_field.setText("a")
    bar.replace_field.setText("aa")
    assert bar.replace_one()
    assert editor.toPlainText() == "aa a" and _selection(editor) == (3, 4)
    assert bar.replace_all() == 3 and editor.toPlainText() == "aaaa aa"


def test_empty_regex_matches_replace_each_line_start(qtbot) -> None:
    editor, bar = _setup(qtbot, "one\ntwo\nthree")
    bar.show_replace()
    bar.set_options(regex=True)
    bar.find_field.setText("^")
    bar.replace_field.setText("# ")
    assert bar.match_count == 3
    assert bar.replace_all() == 3
    assert editor.toPlainText() == "# one\n# two\n# three"
    editor.undo()
    assert editor.toPlainText() == "one\ntwo\nthree" and not editor.document().isUndoAvailable()


def test_characters_outside_the_bmp_do_not_shift_the_selection(qtbot) -> None:
    editor, bar = _setup(qtbot, "😀 naïve 🐍 word and word")
    bar.show_find()
    bar.set_options(whole_word=True)
    qtbot.keyClicks(bar.find_field, "word")
    assert editor.textCursor().selectedText() == "word" and bar.match_count == 2
    bar.find_next()
    assert editor.textCursor().selectedText() == "word" and bar.current_match == 2
    bar.replace_field.setText("🦀")
    assert bar.replace_all() == 2
    assert editor.toPlainText() == "😀 naïve 🐍 🦀 and 🦀"


def test_read_only_text_is_not_replaced(qtbot) -> None:
    editor, bar = _setup(qtbot)
    editor.setReadOnly(True)
    bar.show_replace()
    bar.find_field.setText("foo")
    bar.replace_field.setText("x")
    assert bar.replace_all() == 0 and not bar.replace_one()
    assert bar.status_text() == "The text is read-only" and editor.toPlainText() == TEXT


def test_selection_becomes_the_term_and_edits_update_the_count(qtbot) -> None:
    editor, bar = _setup(qtbot)
    cursor = editor.textCursor()
    cursor.setPosition(TEXT.index("bar"))
    cursor.setPosition(TEXT.index("bar") + 3, QTextCursor.MoveMode.KeepAnchor)
    editor.setTextCursor(cursor)
    bar.show_find()
    assert bar.find_field.text() == "bar" and bar.match_count == 2 and bar.current_match == 1
    editor.moveCursor(QTextCursor.MoveOperation.End)
    editor.insertPlainText("bar bar\n")
    qtbot.waitUntil(lambda: bar.match_count == 4, timeout=2000)
    assert bar.status_text() == "4 matches"


def test_escape_closes_and_set_editor_switches_documents(qtbot) -> None:
    editor, bar = _setup(qtbot)
    bar.show_find()
    qtbot.keyClicks(bar.find_field, "foo")
    with qtbot.waitSignal(bar.closed, timeout=1000):
        qtbot.keyClick(bar.find_field, Qt.Key.Key_Escape)
    assert bar.isHidden()
    other = QPlainTextEdit()
    qtbot.addWidget(other)
    other.setPlainText("foo")
    bar.set_editor(other)
    bar.show_find()
    assert bar.editor() is other and bar.match_count == 1
    bar.set_editor(None)
    assert bar.state is SearchState.EMPTY and not bar.find_next()
