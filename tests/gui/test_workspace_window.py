"""The workspace in the real window: an open folder in the tree, Quick Open, Find and Go to
line on the tab in front, and the repository context a completion sends in StarCoder2's
layout (pytest-qt; the real tiny model where tokens matter)."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.core.engine import Engine
from app.core.recovery import RecoveryStore
from app.gui.folder_view import FolderView
from app.gui.main_window import MainWindow
from app.gui.settings import Settings

pytestmark = pytest.mark.usefixtures("qapp")
CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier

DEP = "def helper(x):\n    return x + 1\n"
UTIL = "from dep import helper\n\n\ndef twice(x):\n    return helper(helper(x))\n"
# It also imports a file .gitignore ignores: that one must stay out of the prompt.
APP = "import util\nimport local_settings\nfrom dep import helper\n\nprint(util.twice(2), helper(3))\n"
CARET = APP.index("(2)")

WindowFactory = Callable[..., MainWindow]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A git folder ``proj``: three Python files that import each other, and what must stay
    hidden (ignored files, node_modules, build output) or out of prompts (.env)."""
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    write(root / ".gitignore", "*.log\nlocal_settings.py\n")
    write(root / "dep.py", DEP)
    write(root / "util.py", UTIL)
    write(root / "app.py", APP)
    write(root / "local_settings.py", "PASSWORD = 'hunter2'\n")
    write(root / ".env", "API_KEY=sk-not-for-prompts\n")
    write(root / "debug.log", "noise\n")
    write(root / "node_modules" / "left-pad" / "index.js", "module.exports = 1;\n")
    write(root / "docs" / "notes.md", "# notes\n")
    return root


@pytest.fixture()
def make_window(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WindowFactory]:
    """Windows sharing one data folder (session file, recovery folder), closed at the end."""
    monkeypatch.setattr(QMessageBox, "warning", lambda *_a, **_k: QMessageBox.StandardButton.Ok)
    made: list[MainWindow] = []

    def make(**settings: object) -> MainWindow:
        options: dict[str, object] = {"auto_complete": False, "n_ctx": 4096, "threads": 2, **settings}
        win = MainWindow(Settings(**options),  # type: ignore[arg-type]
                         recovery=RecoveryStore(tmp_path / "data" / "recovery"),
                         session_file=tmp_path / "data" / "session.json")
        win.show()
        made.append(win)
        return win

    yield make
    for win in made:
        if win.isVisible():
            for tab in win.tabs.all():
                tab.editor.document().setModified(False)
            win.close()
        win.deleteLater()
    gc.collect()


def names(view: FolderView, folder: Path) -> list[str]:
    """The names the tree shows under ``folder``, looked up afresh each time."""
    model = view.model()
    parent = view.index_of(folder)
    return [model.index(row, 0, parent).data() for row in range(model.rowCount(parent))]


def activate(qtbot, win: MainWindow) -> None:
    """Shortcuts of a window only work while it is the active one."""
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=5_000)
    win.editor.setFocus()


# ----------------------------------------------------------------- folder, tree, Quick Open
def test_an_open_folder_shows_in_the_tree_without_ignored_files(
    qtbot, make_window: WindowFactory, project: Path
) -> None:
    win = make_window()
    tree = win.panels.folder_view
    assert not win.panels.folder_dock.isVisible() and not win.menus.act_close_folder.isEnabled()
    win.set_folder(project)
    assert win.panels.folder_dock.isVisible() and win.menus.act_close_folder.isEnabled()
    assert win.panels.folder_dock.windowTitle() == "proj" and win.menus.act_folder_view.text() == "&Folder tree"
    assert tree.folder() == project.resolve() and win.completion.session.workspace == project
    # Shown: the code and the dotfiles a user edits; hidden: .git, node_modules, ignored files.
    qtbot.waitUntil(lambda: names(tree, project) == ["docs", ".env", ".gitignore", "app.py", "dep.py", "util.py"],
                    timeout=5_000)
    # Enter (or a double-click) on a file in the tree opens it in a tab.
    tree.setCurrentIndex(tree.index_of(project / "dep.py"))
    tree.setFocus()
    qtbot.keyClick(tree, Qt.Key.Key_Return)
    assert win.current_path == project / "dep.py" and win.editor.toPlainText() == DEP
    win.menus.act_close_folder.trigger()
    assert tree.folder() is None and win.panels.quick_open.folder() is None
    assert not win.panels.folder_dock.isVisible() and win.completion.session.workspace is None
    assert not win.menus.act_close_folder.isEnabled()


def test_saving_the_gitignore_hides_what_it_now_ignores(qtbot, make_window: WindowFactory, project: Path) -> None:
    win = make_window()
    win.set_folder(project)
    tree = win.panels.folder_view
    qtbot.waitUntil(lambda: "docs" in names(tree, project), timeout=5_000)
    assert win.open_file(project / ".gitignore")
    win.editor.moveCursor(win.editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(win.editor, "docs/")
    qtbot.keyClick(win.editor, Qt.Key.Key_Return)
    assert win.save()
    qtbot.waitUntil(lambda: "docs" not in names(tree, project), timeout=5_000)
    assert names(tree, project) == [".env", ".gitignore", "app.py", "dep.py", "util.py"]


def test_quick_open_finds_a_file_by_a_few_letters_and_opens_it_in_a_new_tab(
    qtbot, make_window: WindowFactory, project: Path
) -> None:
    win = make_window()
    win.set_folder(project)
    assert win.open_file(project / "app.py")
    quick = win.panels.quick_open
    activate(qtbot, win)
    qtbot.keyClick(win.editor, Qt.Key.Key_P, CTRL)
    assert quick.isVisible() and quick.folder() == project.resolve()
    qtbot.waitUntil(lambda: not quick.is_listing(), timeout=5_000)
    # Ignored files and node_modules are not offered.
    assert quick.status.text() == "6 files"
    qtbot.keyClicks(quick.field, "utl")
    assert quick.current_path() == project.resolve() / "util.py"
    qtbot.keyClick(quick.field, Qt.Key.Key_Return)
    assert not quick.isVisible()
    assert [tab.path for tab in win.tabs.all()] == [project / "app.py", project.resolve() / "util.py"]
    assert win.current_path is not None and win.current_path.resolve() == project.resolve() / "util.py"
    assert win.editor.toPlainText() == UTIL
    # The tree selects the file in front.
    tree = win.panels.folder_view
    qtbot.waitUntil(lambda: tree.path_at(tree.currentIndex()).resolve() == project.resolve() / "util.py",
                    timeout=5_000)


def test_ctrl_f_finds_in_the_tab_in_front_and_follows_tab_switches(
    qtbot, make_window: WindowFactory, project: Path
) -> None:
    win = make_window()
    assert win.open_file(project / "util.py")  # "helper" three times
    util_tab = win.tab
    assert win.open_file(project / "app.py")  # "helper" twice
    app_tab = win.tab
    bar = win.panels.find_bar
    activate(qtbot, win)
    qtbot.keyClick(win.editor, Qt.Key.Key_F, CTRL)
    assert bar.isVisible() and not bar.replace_visible() and bar.editor() is app_tab.editor
    qtbot.keyClicks(bar.find_field, "helper")
    qtbot.waitUntil(lambda: bar.match_count == 2, timeout=5_000)
    # F3 goes to the next match in the tab in front; the bar's field keeps the focus.
    qtbot.keyClick(bar.find_field, Qt.Key.Key_F3)
    assert app_tab.editor.textCursor().selectedText() == "helper"
    win.tabs.show_tab(util_tab)
    assert bar.editor() is util_tab.editor
    qtbot.waitUntil(lambda: bar.match_count == 3, timeout=5_000)
    bar.find_field.setFocus()
    qtbot.keyClick(bar.find_field, Qt.Key.Key_F3)
    cursor = util_tab.editor.textCursor()
    assert cursor.selectedText() == "helper" and UTIL[cursor.selectionStart():].startswith("helper")
    # Ctrl+H opens the replace row of the same bar.
    activate(qtbot, win)
    qtbot.keyClick(win.editor, Qt.Key.Key_H, CTRL)
    assert bar.isVisible() and bar.replace_visible()
    # Nothing was changed by searching.
    assert util_tab.editor.toPlainText() == UTIL and app_tab.editor.toPlainText() == APP


def test_ctrl_g_moves_the_caret_of_the_tab_in_front(qtbot, make_window: WindowFactory, project: Path) -> None:
    win = make_window()
    assert win.open_file(project / "util.py")
    assert win.open_file(project / "app.py")
    goto = win.panels.goto_line
    activate(qtbot, win)
    qtbot.keyClick(win.editor, Qt.Key.Key_G, CTRL)
    assert goto.isVisible() and goto.editor() is win.editor
    goto.field.selectAll()
    qtbot.keyClicks(goto.field, "5:7")
    with qtbot.waitSignal(goto.jumped, timeout=2_000) as blocker:
        qtbot.keyClick(goto.field, Qt.Key.Key_Return)
    assert blocker.args == [5, 7]
    cursor = win.editor.textCursor()
    assert (cursor.blockNumber(), cursor.positionInBlock()) == (4, 6)
    assert win.editor.toPlainText() == APP
    # The other tab's caret did not move.
    util_tab = win.tabs.find_path(project / "util.py")
    assert util_tab is not None
    win.tabs.show_tab(util_tab)
    assert win.current_path == project / "util.py" and win.editor.textCursor().position() == 0


def test_a_restored_session_shows_its_folder(qtbot, make_window: WindowFactory, project: Path) -> None:
    first = make_window()
    first.set_folder(project)
    assert first.open_file(project / "app.py")
    first.close()
    second = make_window()
    assert second.panels.folder_view.folder() is None
    assert second.restore_session() == []
    assert second.panels.folder_view.folder() == project.resolve()
    assert second.panels.quick_open.folder() == project.resolve()
    assert second.panels.folder_dock.isVisible() and second.completion.session.workspace == project
    assert second.current_path == project / "app.py"


# ------------------------------------------------------------- repository context
def control(engine: Engine, token: int | None, name: str) -> int:
    """The id of a control token, checked against the model's vocabulary."""
    assert token is not None and engine.token_text(token) == name
    return token


def test_the_prompt_is_starcoder2s_repository_layout_and_typing_leaves_the_block_alone(
    qtbot, make_window: WindowFactory, project: Path, engine: Engine, tiny_model: Path
) -> None:
    fim = engine.fim_tokens
    # The ids are the vocabulary's own control tokens.
    rep, sep = control(engine, fim.rep, "<repo_name>"), control(engine, fim.sep, "<file_sep>")
    pre, suf = control(engine, fim.pre, "<fim_prefix>"), control(engine, fim.suf, "<fim_suffix>")
    mid = control(engine, fim.mid, "<fim_middle>")
    win = make_window(use_repo_context=True, layout="spm")
    win.set_folder(project)
    assert win.open_file(project / "util.py")
    util_tab = win.tab
    assert win.open_file(project / "app.py")
    app_tab = win.tab
    app_tab.put_caret(CARET)

    def block_of(text: str) -> list[int]:
        return [rep, *engine.tokenize("proj"),
                sep, *engine.tokenize("dep.py\n" + DEP),
                sep, *engine.tokenize("util.py\n" + text),
                sep]

    def spm(text: str, caret: int) -> list[int]:
        return [pre, suf, *engine.tokenize(text[caret:]), mid, *engine.tokenize("app.py\n" + text[:caret])]

    def prompt_tokens() -> list[int]:
        return engine.build_prompt(win.build_request()).tokens

    expected = block_of(UTIL) + spm(APP, CARET)
    assert prompt_tokens() == expected  # no .env, no ignored local_settings.py, nothing else

    # The next completion the window sends evaluates exactly these tokens.
    with qtbot.waitSignal(win.client.worker.model_loaded, timeout=20_000):
        win.load_model(str(tiny_model))
    app_tab.put_caret(CARET)
    with qtbot.waitSignal(win.completion.result_ready, timeout=20_000) as blocker:
        win.request_completion()
    assert blocker.args[0].prompt.tokens == expected

    # Typing in the tab in front changes only the FIM part.
    block = block_of(UTIL)
    text, caret = APP, CARET
    win.editor.setFocus()
    for ch in "x, ":
        qtbot.keyClicks(win.editor, ch)
        text, caret = text[:caret] + ch + text[caret:], caret + 1
        assert win.editor.toPlainText() == text
        assert prompt_tokens() == block + spm(text, caret)
    # An unsaved edit in the other tab waits for the next rebuild of the block...
    util_tab.editor.moveCursor(util_tab.editor.textCursor().MoveOperation.End)
    util_tab.editor.insertPlainText("# more\n")
    assert util_tab.modified and win.tab is app_tab
    assert prompt_tokens()[: len(block)] == block
    # ...which a tab switch brings: then the tab's text as it is in the editor is used.
    win.tabs.show_tab(util_tab)
    win.tabs.show_tab(app_tab)
    assert prompt_tokens() == block_of(UTIL + "# more\n") + spm(text, caret)
    assert project.joinpath("util.py").read_text(encoding="utf-8") == UTIL  # nothing was saved
