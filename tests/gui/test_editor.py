"""The editor's progressive file loading: whole text, no history, never a partial save."""

from __future__ import annotations

from pathlib import Path

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
