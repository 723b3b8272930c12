"""Tabs in the real window: each its own text, undo, ghost and recovery record; closing,
reopening, the quit question, and the session that comes back (pytest-qt)."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.core.recovery import RECORD_SUFFIX, RecoveryStore, decode_record
from app.gui.main_window import MainWindow
from app.gui.settings import Settings

pytestmark = pytest.mark.usefixtures("qapp")
CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier


class Questions:
    """Stands in for QMessageBox.question: records what was asked, answers from a script."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.answers: list[QMessageBox.StandardButton] = []

    def __call__(self, _parent: object, title: str, text: str, *_args: object) -> QMessageBox.StandardButton:
        self.asked.append(f"{title}: {text}")
        assert self.answers, f"unexpected question: {title}: {text}"
        return self.answers.pop(0)


@pytest.fixture()
def questions(monkeypatch: pytest.MonkeyPatch) -> Questions:
    fake = Questions()
    monkeypatch.setattr(QMessageBox, "question", fake)
    monkeypatch.setattr(QMessageBox, "warning", lambda *_a, **_k: QMessageBox.StandardButton.Ok)
    return fake


WindowFactory = Callable[..., MainWindow]


@pytest.fixture()
def make_window(qtbot, tmp_path: Path, questions: Questions) -> Iterator[WindowFactory]:
    """Windows sharing one data folder (session file, recovery folder), closed at the end."""
    made: list[MainWindow] = []

    def make(**settings: object) -> MainWindow:
        win = MainWindow(Settings(auto_complete=False, **settings),  # type: ignore[arg-type]
                         recovery=RecoveryStore(tmp_path / "recovery"), session_file=tmp_path / "session.json")
        win.show()
        made.append(win)
        return win

    yield make
    for win in made:
        dispose(win)


def dispose(win: MainWindow) -> None:
    """Close without the unsaved-changes question, and collect the window on this thread."""
    if win.isVisible():
        for tab in win.tabs.all():
            tab.editor.document().setModified(False)
        win.close()
    win.deleteLater()
    gc.collect()


@pytest.fixture()
def files(tmp_path: Path) -> list[Path]:
    made = []
    for name in ("a.py", "b.py", "c.py"):
        path = tmp_path / name
        path.write_text("".join(f"{name[0]}{i} = {i}\n" for i in range(200)), encoding="utf-8")
        made.append(path)
    return made


def type_at_end(qtbot, win: MainWindow, text: str) -> None:
    win.editor.moveCursor(win.editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(win.editor, text)


def activate(qtbot, win: MainWindow) -> None:
    """Shortcuts of a window only work while it is the active one."""
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=5_000)
    win.editor.setFocus()


def test_opening_files_gives_a_tab_each_and_an_open_file_comes_to_the_front(
    make_window: WindowFactory, files: list[Path]
) -> None:
    win = make_window()
    assert len(win.tabs.all()) == 1 and win.current_path is None
    for path in files:
        assert win.open_file(path)
    # The untitled tab nobody typed in gave way to the first file.
    assert [tab.path for tab in win.tabs.all()] == files
    assert win.open_file(files[0])
    assert win.current_path == files[0] and len(win.tabs.all()) == 3
    assert win.tabs.tabText(0) == "a.py" and win.windowTitle().startswith("a.py")
    # The completion session's current document is the tab in front.
    session = win.completion.session
    assert session.current is not None and session.current.id == win.tab.doc_id
    assert session.current.path == files[0]


def test_each_tab_keeps_its_own_text_and_undo_history(qtbot, make_window: WindowFactory, files: list[Path]) -> None:
    win = make_window()
    win.open_file(files[0])
    tab_a = win.tab
    win.open_file(files[1])
    tab_b = win.tab
    type_at_end(qtbot, win, "B")  # one key: one undo step
    win.tabs.show_tab(tab_a)
    type_at_end(qtbot, win, "A")
    assert tab_a.modified and tab_b.modified
    assert win.windowTitle().startswith("a.py •") and win.tabs.tabText(1) == "b.py •"
    tab_a.editor.undo()
    assert tab_a.editor.document_text() == files[0].read_text()
    assert tab_b.editor.document_text() == files[1].read_text() + "B"  # untouched by a's undo
    win.tabs.show_tab(tab_b)
    win.editor.undo()
    assert tab_b.editor.document_text() == files[1].read_text()
    assert not tab_b.editor.document().isUndoAvailable()
    assert tab_a.editor.document().isRedoAvailable()


# ------------------------------------------------------------------ ghosts
@pytest.fixture()
def model_window(qtbot, make_window: WindowFactory, tiny_model: Path, files: list[Path]) -> MainWindow:
    win = make_window(n_ctx=4096, max_tokens=12, threads=2)
    with qtbot.waitSignal(win.client.worker.model_loaded, timeout=20_000):
        win.load_model(str(tiny_model))
    for path in files[:2]:
        assert win.open_file(path)
    return win


def ghost_shown(win: MainWindow) -> bool:
    return win.editor.ghost is not None and win.status.state_label.text().startswith("● idle")


def test_a_ghost_stays_with_its_tab(qtbot, model_window: MainWindow) -> None:
    win = model_window
    tab_a, tab_b = win.tabs.all()
    assert win.tab is tab_b
    win.request_completion()
    qtbot.waitUntil(lambda: ghost_shown(win), timeout=15_000)
    ghost = tab_b.editor.ghost
    assert ghost is not None and ghost.position == tab_b.caret()
    win.tabs.show_tab(tab_a)
    assert tab_a.editor.ghost is None and tab_b.editor.ghost is None  # never shown in, or left behind for, another tab
    assert win.completion.session.current is not None and win.completion.session.current.id == tab_a.doc_id
    win.tabs.show_tab(tab_b)
    assert tab_b.editor.ghost == ghost  # back from b's own completion cache, without asking the engine
    assert tab_a.editor.ghost is None


def test_a_result_for_a_tab_no_longer_in_front_is_dropped(qtbot, model_window: MainWindow) -> None:
    win = model_window
    tab_a, tab_b = win.tabs.all()
    win.request_completion()  # for b
    asked = win.completion.session.live_request_id
    assert asked is not None
    win.tabs.show_tab(tab_a)  # the user moves on before the answer is shown
    assert win.completion.session.live_request_id is None
    # One worker runs jobs in order: once a's own request is answered, b's is over too.
    win.request_completion()
    mine = win.completion.session.live_request_id
    qtbot.waitUntil(lambda: ghost_shown(win), timeout=15_000)
    assert mine is not None and mine > asked
    ghost = tab_a.editor.ghost
    assert ghost is not None and ghost.position == tab_a.caret()
    assert tab_b.editor.ghost is None
    # Whatever of b's request still arrives is dropped: never painted into a's (or b's) editor.
    win.completion.on_text(asked, "LATE")
    assert tab_a.editor.ghost == ghost and tab_b.editor.ghost is None
    assert tab_a.path is not None and tab_a.editor.document_text() == tab_a.path.read_text()


# ------------------------------------------------------- closing, reopening
def test_ctrl_tab_cycles_and_ctrl_w_closes_and_ctrl_shift_t_reopens(
    qtbot, make_window: WindowFactory, files: list[Path], questions: Questions
) -> None:
    win = make_window()
    for path in files:
        win.open_file(path)
    activate(qtbot, win)
    assert win.current_path == files[2]
    qtbot.keyClick(win.editor, Qt.Key.Key_Tab, CTRL)
    assert win.current_path == files[0]  # wraps around
    qtbot.keyClick(win.editor, Qt.Key.Key_Backtab, CTRL | SHIFT)
    assert win.current_path == files[2]
    qtbot.keyClick(win.editor, Qt.Key.Key_Backtab, CTRL | SHIFT)
    assert win.current_path == files[1]
    win.tab.put_caret(123)
    qtbot.keyClick(win.editor, Qt.Key.Key_W, CTRL)
    assert [tab.path for tab in win.tabs.all()] == [files[0], files[2]]
    assert win.current_path == files[2] and questions.asked == []  # unmodified: closed without a question
    qtbot.keyClick(win.editor, Qt.Key.Key_T, CTRL | SHIFT)
    assert win.current_path == files[1] and win.tab.caret() == 123
    assert [tab.path for tab in win.tabs.all()] == [files[0], files[1], files[2]]


def test_closing_a_modified_tab_asks_and_cancel_keeps_it(
    qtbot, make_window: WindowFactory, files: list[Path], questions: Questions
) -> None:
    win = make_window()
    win.open_file(files[0])
    type_at_end(qtbot, win, "x")
    questions.answers = [QMessageBox.StandardButton.Cancel]
    assert not win.close_tab()
    assert questions.asked == ["Unsaved changes: Save changes to a.py?"]
    assert win.current_path == files[0] and win.editor.document_text().endswith("x")
    questions.answers = [QMessageBox.StandardButton.Discard]
    assert win.close_tab()
    # The last tab closed: a fresh untitled one takes its place.
    (tab,) = win.tabs.all()
    assert tab.path is None and tab.pristine
    assert files[0].read_text().endswith("= 199\n")  # Discard never writes


def test_the_quit_question_lists_every_modified_tab(
    qtbot, make_window: WindowFactory, files: list[Path], questions: Questions
) -> None:
    win = make_window()
    win.open_file(files[0])
    type_at_end(qtbot, win, "1")
    win.open_file(files[1])  # left unmodified: not listed
    win.open_file(files[2])
    type_at_end(qtbot, win, "3")
    win.new_file()
    qtbot.keyClicks(win.editor, "draft")
    questions.answers = [QMessageBox.StandardButton.Cancel]
    win.close()
    assert win.isVisible()  # Cancel: nothing closed
    (asked,) = questions.asked
    assert "3 files have unsaved changes" in asked
    assert str(files[0]) in asked and str(files[2]) in asked and "untitled" in asked
    assert str(files[1]) not in asked
    questions.answers = [QMessageBox.StandardButton.Discard]
    win.close()
    assert not win.isVisible()


def test_save_all_from_the_quit_question_writes_every_file(
    qtbot, make_window: WindowFactory, files: list[Path], questions: Questions
) -> None:
    win = make_window()
    for path in files[:2]:
        win.open_file(path)
        type_at_end(qtbot, win, f"# {path.name}")
    questions.answers = [QMessageBox.StandardButton.Save]
    win.close()
    assert not win.isVisible()
    for path in files[:2]:
        assert path.read_text().endswith(f"= 199\n# {path.name}")


# ----------------------------------------------------------------- session
def test_the_session_comes_back_after_a_restart(qtbot, make_window: WindowFactory, files: list[Path]) -> None:
    first = make_window()
    carets = {}
    for path, caret in zip(files, (5, 1200, 300), strict=True):
        first.open_file(path)
        first.tab.put_caret(caret)
        carets[path] = first.tab.caret()
    first.new_file()  # an untitled tab is not part of the session (recovery keeps unsaved text)
    first.tabs.show_tab(first.tabs.find_path(files[1]))  # type: ignore[arg-type]
    first.editor.verticalScrollBar().setValue(40)
    scroll = first.editor.verticalScrollBar().value()
    assert scroll > 0
    first.close()
    assert not first.isVisible()

    files[2].unlink()  # gone since: skipped, and said
    second = make_window()
    problems = second.restore_session()
    assert [tab.path for tab in second.tabs.all()] == files[:2]
    assert second.current_path == files[1]
    assert {tab.path: tab.caret() for tab in second.tabs.all()} == {p: carets[p] for p in files[:2]}
    assert second.editor.verticalScrollBar().value() == scroll
    assert problems == [f"{files[2]} no longer exists"]
    assert "c.py no longer exists" in second.statusBar().currentMessage()


def test_a_damaged_session_file_starts_with_a_message(make_window: WindowFactory, tmp_path: Path) -> None:
    (tmp_path / "session.json").write_bytes(b"\xffgarbage")
    win = make_window()
    assert win.restore_session() == ["The last session could not be restored (not valid UTF-8)."]
    (tab,) = win.tabs.all()
    assert tab.pristine
    assert "could not be restored" in win.statusBar().currentMessage()


# ---------------------------------------------------------------- recovery
def records(root: Path) -> dict[Path, tuple[str | None, str]]:
    """Every recovery record under ``root``: (its file's path, its text)."""
    found = {}
    for path in (root / "sessions").glob(f"*/*{RECORD_SUFFIX}"):
        meta, text = decode_record(path.read_bytes())
        found[path] = (meta["path"], text)
    return found


def test_each_modified_tab_has_its_own_recovery_record(
    qtbot, make_window: WindowFactory, files: list[Path], tmp_path: Path, questions: Questions
) -> None:
    win = make_window()
    win.open_file(files[0])
    type_at_end(qtbot, win, "# a")
    win.open_file(files[1])  # unmodified: no record
    win.new_file()
    qtbot.keyClicks(win.editor, "untitled draft")
    assert win.write_recovery()
    assert sorted(records(tmp_path / "recovery").values(), key=str) == sorted(
        [(str(files[0]), files[0].read_text() + "# a"), (None, "untitled draft")], key=str
    )
    questions.answers = [QMessageBox.StandardButton.Discard]
    assert win.close_tab()  # the untitled tab, discarded knowingly: its record goes
    assert list(records(tmp_path / "recovery").values()) == [(str(files[0]), files[0].read_text() + "# a")]
    win.tabs.show_tab(win.tabs.find_path(files[0]))  # type: ignore[arg-type]
    assert win.save()  # saved: its record has done its job
    assert records(tmp_path / "recovery") == {}


def test_two_instances_keep_separate_recovery_data(
    qtbot, make_window: WindowFactory, files: list[Path], tmp_path: Path
) -> None:
    one, two = make_window(), make_window()
    one.open_file(files[0])
    type_at_end(qtbot, one, "# one")
    two.open_file(files[0])  # the same file in both
    type_at_end(qtbot, two, "# two")
    two.new_file()
    qtbot.keyClicks(two.editor, "two's draft")
    assert one.write_recovery() and two.write_recovery()
    found = records(tmp_path / "recovery")
    folders = {path.parent for path in found}
    assert folders == {one.recovery.session.folder, two.recovery.session.folder}
    assert sorted(text for _p, text in found.values()) == sorted(
        [files[0].read_text() + "# one", files[0].read_text() + "# two", "two's draft"]
    )
    # Both are running: neither lists (or could take) the other's text.
    assert one.recovery.scan().candidates == () and two.recovery.scan().candidates == ()
    one.recovery.session.close()  # `one` stops without saving (its lock goes, its record stays)
    (left,) = two.recovery.scan().candidates
    assert left.text == files[0].read_text() + "# one" and left.original_path == files[0]
    two.recovery.release()
    assert records(tmp_path / "recovery")  # nothing deleted by looking


def test_after_a_crash_each_file_is_offered_and_restore_all_gives_each_its_tab(
    qtbot, make_window: WindowFactory, files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.gui.recovery_dialog import RecoveryDialog, offer_recovery

    dead = make_window()
    for path in files[:2]:
        dead.open_file(path)
        type_at_end(qtbot, dead, f"# {path.name}")
    dead.new_file()
    qtbot.keyClicks(dead.editor, "draft")
    assert dead.write_recovery()
    dead.recovery.session.close()  # it stops without saving: its lock goes, its records stay

    win = make_window()
    win.open_file(files[1])  # opened at start: its recovered text replaces what was read
    shown: list[list[str]] = []

    def answer(dialog: RecoveryDialog) -> int:
        shown.append([dialog.list.item(i).text().split(" — ")[0] for i in range(dialog.list.count())])
        dialog.restore_all_button.click()
        return 1

    monkeypatch.setattr(RecoveryDialog, "exec", answer)
    restored = offer_recovery(win, preferred=files[1])
    (listed,) = shown
    assert listed[0] == "b.py" and sorted(listed[1:]) == ["a.py", "untitled"]  # one entry per file, its own first
    assert len(restored) == 3
    texts = {tab.path: tab.editor.document_text() for tab in win.tabs.all()}
    assert texts == {
        files[0]: files[0].read_text() + "# a.py",
        files[1]: files[1].read_text() + "# b.py",
        None: "draft",
    }
    assert all(tab.modified for tab in win.tabs.all())
    assert win.recovery.scan().candidates == ()  # handed over: nothing left to offer


def test_two_unsaved_copies_of_one_file_both_come_back(
    qtbot, make_window: WindowFactory, files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.gui.recovery_dialog import RecoveryDialog, offer_recovery

    for text in ("# first copy", "# second copy"):
        dead = make_window()
        dead.open_file(files[0])
        type_at_end(qtbot, dead, text)
        assert dead.write_recovery()
        dead.recovery.session.close()  # stops without saving
    win = make_window()
    monkeypatch.setattr(RecoveryDialog, "exec", lambda dialog: dialog.restore_all_button.click())
    assert len(offer_recovery(win)) == 2
    texts = sorted(tab.editor.document_text() for tab in win.tabs.all())
    original = files[0].read_text()
    assert texts == [original + "# first copy", original + "# second copy"]  # neither replaced the other
    assert sorted(str(tab.path) for tab in win.tabs.all()) == sorted([str(files[0]), "None"])


def test_each_tab_keeps_its_language_choice(qtbot, make_window: WindowFactory, files: list[Path]) -> None:
    win = make_window()
    win.open_file(files[0])
    tab_a = win.tab
    win.open_file(files[1])
    tab_b = win.tab
    box = win.menus.language_box
    box.setCurrentIndex(box.findData("ruby"))  # the toolbar choice applies to the tab in front
    qtbot.waitUntil(lambda: not tab_b.language_pending, timeout=10_000)
    assert tab_b.highlighter.lexer.name == "Ruby"
    win.tabs.show_tab(tab_a)
    assert box.currentData() == ""  # a's own choice (auto-detect) shows
    qtbot.waitUntil(lambda: not tab_a.language_pending, timeout=10_000)
    assert tab_a.highlighter.lexer.name == "Python"
    win.tabs.show_tab(tab_b)
    assert box.currentData() == "ruby" and tab_b.highlighter.lexer.name == "Ruby"


def test_untitled_tabs_are_told_apart(make_window: WindowFactory) -> None:
    win = make_window()
    win.new_file()
    win.new_file()
    assert [win.tabs.tabText(i) for i in range(win.tabs.count())] == ["untitled", "untitled 2", "untitled 3"]
    win.close_tab()  # "untitled 3"
    win.new_file()
    assert win.tab.title == "untitled 3" and win.windowTitle().startswith("untitled 3 — ")
