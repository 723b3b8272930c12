"""The folder tree (app.gui.folder_view): ignored files hidden, folders first, files activate."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from app.gui.folder_view import FolderView


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    _write(root, {
        ".gitignore": "*.log\n",
        "a.py": "", "B.py": "", "debug.log": "", ".env": "KEY=1\n",
        "src/main.py": "", "src/.gitignore": "gen_*.py\n", "src/gen_x.py": "", "src/util/helpers.py": "",
        "node_modules/pkg/index.js": "", "build/out.o": "", "src/__pycache__/main.cpython-311.pyc": "",
    })
    return root


def _names(view: FolderView, folder: Path) -> list[str]:
    """The names shown under ``folder``, looked up afresh (model indexes do not outlive row changes)."""
    model = view.model()
    parent = view.index_of(folder)
    return [model.index(row, 0, parent).data() for row in range(model.rowCount(parent))]


def _open(qtbot, tmp_path: Path) -> tuple[FolderView, Path]:
    root = _project(tmp_path)
    view = FolderView()
    qtbot.addWidget(view)
    view.set_folder(root)
    return view, root


def test_tree_hides_ignored_entries_and_sorts_folders_first(qtbot, tmp_path: Path) -> None:
    view, root = _open(qtbot, tmp_path)
    assert view.folder() == root.resolve() and view.index_of(root) == view.rootIndex()
    qtbot.waitUntil(lambda: _names(view, root) == ["src", ".env", ".gitignore", "a.py", "B.py"], timeout=5000)
    view.expand(view.index_of(root / "src"))
    # The nested .gitignore hides gen_x.py; __pycache__ is a built-in exclusion.
    qtbot.waitUntil(lambda: _names(view, root / "src") == ["util", ".gitignore", "main.py"], timeout=5000)
    assert view.header().isHidden() and view.isEnabled()
    assert not view.index_of(root / "node_modules").isValid()
    assert not view.index_of(root / "debug.log").isValid()


def test_enter_on_a_file_emits_its_path_and_on_a_folder_does_not(qtbot, tmp_path: Path) -> None:
    view, root = _open(qtbot, tmp_path)
    qtbot.waitUntil(lambda: "B.py" in _names(view, root), timeout=5000)
    view.setCurrentIndex(view.index_of(root / "src"))
    with qtbot.assertNotEmitted(view.file_activated):
        qtbot.keyClick(view, Qt.Key.Key_Return)
    view.setCurrentIndex(view.index_of(root / "a.py"))
    with qtbot.waitSignal(view.file_activated, timeout=2000) as blocker:
        qtbot.keyClick(view, Qt.Key.Key_Return)
    assert blocker.args == [root.resolve() / "a.py"]


def test_reveal_expands_to_a_nested_file_and_refuses_hidden_or_outside_ones(qtbot, tmp_path: Path) -> None:
    view, root = _open(qtbot, tmp_path)
    target = root / "src" / "util" / "helpers.py"
    qtbot.waitUntil(lambda: view.reveal(target), timeout=5000)
    assert view.path_at(view.currentIndex()) == target.resolve()
    assert view.isExpanded(view.index_of(root / "src" / "util"))
    assert not view.reveal(root / "node_modules" / "pkg" / "index.js")
    assert not view.reveal(tmp_path / "elsewhere.py")
    assert not view.reveal(root)


def test_reload_rules_applies_an_edited_gitignore(qtbot, tmp_path: Path) -> None:
    view, root = _open(qtbot, tmp_path)
    qtbot.waitUntil(lambda: "B.py" in _names(view, root), timeout=5000)
    (root / ".gitignore").write_text("*.log\nB.py\n", encoding="utf-8")
    view.reload_rules()
    qtbot.waitUntil(lambda: _names(view, root) == ["src", ".env", ".gitignore", "a.py"], timeout=5000)


def test_no_folder_shows_nothing(qtbot, tmp_path: Path) -> None:
    view = FolderView()
    qtbot.addWidget(view)
    assert view.folder() is None and not view.isEnabled()
    view.set_folder(_project(tmp_path))
    view.set_folder(None)
    assert view.folder() is None and view.rules() is None and not view.isEnabled()
    assert not view.index_of(tmp_path).isValid()
