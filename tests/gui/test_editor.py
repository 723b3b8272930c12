"""The editor: progressive file loading (whole text, no history, never a partial save, no lost keys)
and indenting with Tab / Shift+Tab."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QLabel, QLineEdit, QVBoxLayout, QWidget

from app.core.ghost import Ghost
from app.gui.editor import LOAD_CHUNK_LINES, CodeEditor
from app.gui.main_window import MainWindow
from app.gui.settings import Settings


def _lines(n: int) -> str:
    return "".join(f"line_{i} = {i}  # ünïcode\n" for i in range(n))


def test_big_text_arrives_in_slices_and_ends_unmodified_without_history(qtbot) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    text = _lines(LOAD_CHUNK_LINES * 5 + 17)
    with qtbot.waitSignal(editor.loading_finished, timeout=10_000):
        editor.load_text(text)
        # Only the first slice is in; the user cannot type into a half-loaded file.
        assert editor.loading and editor.isReadOnly()
        assert editor.document().blockCount() == LOAD_CHUNK_LINES + 1
    assert editor.toPlainText() == text
    assert not editor.loading and not editor.isReadOnly()
    assert not editor.document().isModified()
    assert not editor.document().isUndoAvailable()  # opening a file is not an undoable edit
    editor.insertPlainText("x")
    assert editor.document().isUndoAvailable()


def test_small_text_is_complete_at_once(qtbot) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.load_text("a = 1\nb = 2")
    assert editor.toPlainText() == "a = 1\nb = 2" and not editor.loading and not editor.isReadOnly()


def test_a_new_load_replaces_one_in_progress(qtbot) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.load_text(_lines(LOAD_CHUNK_LINES * 4))
    second = _lines(LOAD_CHUNK_LINES * 3).replace("line", "other")
    with qtbot.waitSignal(editor.loading_finished, timeout=10_000):
        editor.load_text(second)
    assert editor.toPlainText() == second


def test_saving_while_loading_writes_the_whole_file(qtbot, tmp_path: Path) -> None:
    window = MainWindow(Settings(auto_complete=False))
    qtbot.addWidget(window)
    source = tmp_path / "big.py"
    text = _lines(LOAD_CHUNK_LINES * 6)
    source.write_text(text, encoding="utf-8")
    assert window.open_file(source)
    assert window.editor.loading
    copy = tmp_path / "copy.py"
    assert window._write(copy)  # noqa: SLF001 - Save As without its file dialog
    assert copy.read_text(encoding="utf-8") == text
    assert not window.editor.loading


def test_the_language_comes_from_the_helper_thread(qtbot, tmp_path: Path) -> None:
    window = MainWindow(Settings(auto_complete=False))
    qtbot.addWidget(window)
    rust = tmp_path / "main.rs"
    rust.write_text("fn main() {\n    println!(\"hi\");\n}\n", encoding="utf-8")
    window.open_file(rust)
    qtbot.waitUntil(lambda: not window.language_pending, timeout=10_000)
    assert window.highlighter.lexer.name == "Rust"
    # Two quick requests: only the newest one's lexer is applied.
    window.lexers.for_alias("go")
    window.lexers.for_alias("c")
    qtbot.waitUntil(lambda: not window.language_pending, timeout=10_000)
    assert window.highlighter.lexer.name == "C"


# ------------------------------------------------------------------ indentation
def _select(editor: CodeEditor, anchor: int, position: int) -> None:
    cursor = editor.textCursor()
    cursor.setPosition(anchor)
    cursor.setPosition(position, QTextCursor.MoveMode.KeepAnchor)
    editor.setTextCursor(cursor)


def test_tab_indents_every_selected_line_as_one_undo_step(qtbot) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    before = "def f():\nx = 1\n\n  y = 2\nz = 3\n"
    editor.setPlainText(before)
    editor.insertPlainText("# typed\n")  # an edit before, which the undo must not take back
    typed = editor.toPlainText()
    start = typed.index("f()")
    end = typed.index("y =") + 1  # inside "  y = 2"
    _select(editor, start, end)
    qtbot.keyClick(editor, Qt.Key.Key_Tab)
    # Every selected line gains one indent level (the empty one stays empty); "z = 3" is not selected.
    assert editor.toPlainText() == "# typed\n    def f():\n    x = 1\n\n      y = 2\nz = 3\n"
    cursor = editor.textCursor()
    assert cursor.anchor() == start + 4  # still just before "f()"
    assert cursor.position() == editor.toPlainText().index("y =") + 1  # still just after "y"
    editor.undo()
    assert editor.toPlainText() == typed


def test_tab_indent_follows_the_settings_and_keeps_whole_lines_selected(qtbot) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.set_indentation(spaces=False, width=4)
    editor.setPlainText("a\nb\nc\n")
    _select(editor, 0, 4)  # "a\nb\n": ends at the start of "c", which is therefore not selected
    qtbot.keyClick(editor, Qt.Key.Key_Tab)
    assert editor.toPlainText() == "\ta\n\tb\nc\n"
    cursor = editor.textCursor()
    assert (cursor.selectionStart(), cursor.selectionEnd()) == (0, 6)  # the same two whole lines
    assert cursor.selectedText() == "\ta\u2029\tb\u2029"


def test_tab_without_a_multi_line_selection_inserts_one_indent(qtbot) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.setPlainText("ab")
    _select(editor, 1, 1)
    qtbot.keyClick(editor, Qt.Key.Key_Tab)
    assert editor.toPlainText() == "a    b"


def test_shift_tab_outdents_and_keeps_the_focus(qtbot) -> None:
    host = QWidget()
    qtbot.addWidget(host)
    layout = QVBoxLayout(host)
    other = QLineEdit()  # where a Shift+Tab that moved the focus would land
    editor = CodeEditor()
    layout.addWidget(other)
    layout.addWidget(editor)
    host.show()
    host.activateWindow()
    editor.setFocus()
    qtbot.waitUntil(editor.hasFocus)
    editor.setPlainText("if x:\n      deep\n\tdone\n  two\n")
    # The caret's line alone: six spaces go back to the previous stop (four).
    cursor = editor.textCursor()
    cursor.setPosition(editor.toPlainText().index("deep") + 2)
    editor.setTextCursor(cursor)
    qtbot.keyClick(editor, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier)
    assert editor.toPlainText() == "if x:\n    deep\n\tdone\n  two\n"
    assert editor.textCursor().position() == editor.toPlainText().index("deep") + 2
    assert editor.hasFocus() and not other.hasFocus()
    # All selected lines: one level (or a tab, or what is left) each, as one undo step.
    text = editor.toPlainText()
    _select(editor, 0, len(text) - 1)
    qtbot.keyClick(editor, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier)
    assert editor.toPlainText() == "if x:\ndeep\ndone\ntwo\n"
    assert editor.hasFocus()
    editor.undo()
    assert editor.toPlainText() == text
    # Shift+Tab as Qt may also deliver it (Tab with Shift held) does the same.
    editor.setPlainText("    a")
    qtbot.keyClick(editor, Qt.Key.Key_Tab, Qt.KeyboardModifier.ShiftModifier)
    assert editor.toPlainText() == "a" and editor.hasFocus()


def test_tab_with_a_ghost_still_accepts_it(qtbot) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.setPlainText("def f():\n    ")
    editor.moveCursor(QTextCursor.MoveOperation.End)
    position = editor.textCursor().position()
    editor.show_ghost(Ghost(position, "return 1\n"))
    assert editor.ghost is not None
    qtbot.keyClick(editor, Qt.Key.Key_Tab)
    assert editor.toPlainText() == "def f():\n    return 1\n"
    assert editor.ghost is None


# ------------------------------------------------------------------ big files
def test_keys_pressed_while_loading_are_applied_in_order_at_the_caret(qtbot) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.show()
    text = _lines(40_000)
    editor.load_text(text)
    assert editor.loading
    cursor = editor.textCursor()
    cursor.setPosition(text.index("\n"))  # the end of the first line, which is already there
    editor.setTextCursor(cursor)
    with qtbot.waitSignal(editor.loading_finished, timeout=60_000):
        qtbot.keyClicks(editor, "  # x")
        qtbot.keyClick(editor, Qt.Key.Key_Return)
        qtbot.keyClicks(editor, "y=1")
        assert editor.loading  # all of it arrived before the file was complete
        assert editor.toPlainText() == text[: len(editor.toPlainText())]  # nothing applied yet
        progress = editor.findChild(QLabel, "loadingProgress")
        assert progress.isVisible() and "waiting" in progress.text() and progress.text().startswith("Loading…")
    first_line = text[: text.index("\n")]
    assert editor.toPlainText() == first_line + "  # x\ny=1" + text[len(first_line) :]
    assert not progress.isVisible()
    assert editor.document().isModified()
    editor.undo()  # the typing is an edit like any other; the loading is not
    while editor.document().isUndoAvailable():
        editor.undo()
    assert editor.toPlainText() == text


def test_a_50k_line_file_loads_completely_and_exactly(qtbot) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.show()
    text = _lines(50_000) + "last line without a newline \t"
    slices: list[int] = []
    editor.loading_progress.connect(slices.append)
    with qtbot.waitSignal(editor.loading_finished, timeout=60_000):
        editor.load_text(text)
        assert editor.loading
    assert editor.document_text() == text
    assert editor.document().blockCount() == 50_001
    assert slices[-1] == 100 and len(slices) >= 2 and slices == sorted(slices)
    assert not editor.document().isModified() and not editor.document().isUndoAvailable()
    # The view knows the whole document: the scroll bar reaches the last line.
    editor.moveCursor(QTextCursor.MoveOperation.End)
    assert editor.verticalScrollBar().maximum() > 49_000
    assert editor.firstVisibleBlock().blockNumber() > 49_000
