"""Quick Open (app.gui.quick_open): background listing, fuzzy filter, keyboard flow, bold matches."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from app.core.workspace.fuzzy import FuzzyMatch
from app.gui.quick_open import PATH_ROLE, POSITIONS_ROLE, QuickOpen, bold_html, match_html


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    files = {
        ".gitignore": "*.log\n", "main.py": "", "app/gui/main_window.py": "", "app/gui/editor.py": "",
        "app/core/engine.py": "", "docs/guide.md": "", "server.log": "", "node_modules/mw/index.js": "",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def _rows(quick: QuickOpen) -> list[str]:
    return [str(quick.results.item(i).data(PATH_ROLE)) for i in range(quick.results.count())]


def _listed(qtbot, tmp_path: Path) -> tuple[QuickOpen, Path]:
    root = _project(tmp_path)
    quick = QuickOpen()
    qtbot.addWidget(quick)
    with qtbot.waitSignal(quick.listing_finished, timeout=5000) as blocker:
        quick.set_folder(root)
    assert blocker.args == [6]  # server.log and node_modules are not offered
    return quick, root


def test_typing_filters_and_enter_chooses_the_selected_file(qtbot, tmp_path: Path) -> None:
    quick, root = _listed(qtbot, tmp_path)
    quick.popup()
    assert quick.isVisible() and quick.field.text() == ""
    assert quick.status.text() == "6 files"
    qtbot.keyClicks(quick.field, "mwin")
    assert _rows(quick) == ["app/gui/main_window.py"]
    assert quick.results.item(0).data(POSITIONS_ROLE) == (8, 13, 14, 15)
    assert quick.status.text() == "1 match"
    with qtbot.waitSignal(quick.file_chosen, timeout=2000) as blocker:
        qtbot.keyClick(quick.field, Qt.Key.Key_Return)
    assert blocker.args == [root.resolve() / "app" / "gui" / "main_window.py"]
    assert not quick.isVisible()


def test_arrows_move_the_selection_and_escape_closes_without_choosing(qtbot, tmp_path: Path) -> None:
    quick, root = _listed(qtbot, tmp_path)
    quick.popup()
    qtbot.keyClicks(quick.field, "main")
    assert _rows(quick)[:2] == ["main.py", "app/gui/main_window.py"]
    assert quick.results.currentRow() == 0
    qtbot.keyClick(quick.field, Qt.Key.Key_Down)
    assert quick.current_path() == root.resolve() / "app" / "gui" / "main_window.py"
    qtbot.keyClick(quick.field, Qt.Key.Key_Down)  # stays on the last row
    qtbot.keyClick(quick.field, Qt.Key.Key_Up)
    qtbot.keyClick(quick.field, Qt.Key.Key_Up)
    assert quick.results.currentRow() == 0
    assert quick.field.text() == "main"  # the arrows did not move into the field's text
    with qtbot.assertNotEmitted(quick.file_chosen):
        qtbot.keyClick(quick.field, Qt.Key.Key_Escape)
    assert not quick.isVisible()


def test_no_match_says_so_and_enter_does_nothing(qtbot, tmp_path: Path) -> None:
    quick, _root = _listed(qtbot, tmp_path)
    quick.popup()
    qtbot.keyClicks(quick.field, "zzz")
    assert _rows(quick) == [] and quick.status.text() == "No file matches “zzz”"
    with qtbot.assertNotEmitted(quick.file_chosen):
        qtbot.keyClick(quick.field, Qt.Key.Key_Return)
    assert quick.isVisible()


def test_listing_runs_in_the_background_and_what_was_typed_meanwhile_applies(qtbot, tmp_path: Path) -> None:
    root = _project(tmp_path)
    quick = QuickOpen()
    qtbot.addWidget(quick)
    with qtbot.waitSignal(quick.listing_finished, timeout=5000):
        quick.set_folder(root)
        # set_folder returned before the list arrived (it comes through the event loop).
        assert quick.is_listing() and quick.status.text() == "Listing files…"
        quick.popup()
        quick.field.setText("eng")
        assert _rows(quick) == []
    assert _rows(quick) == ["app/core/engine.py"]
    assert not quick.is_listing()


def test_popup_lists_again_and_finds_new_files(qtbot, tmp_path: Path) -> None:
    quick, root = _listed(qtbot, tmp_path)
    (root / "docs" / "new_page.md").write_text("", encoding="utf-8")
    with qtbot.waitSignal(quick.listing_finished, timeout=5000) as blocker:
        quick.popup()
    assert blocker.args == [7]
    qtbot.keyClicks(quick.field, "newp")
    assert _rows(quick) == ["docs/new_page.md"]


def test_no_folder(qtbot) -> None:
    quick = QuickOpen()
    qtbot.addWidget(quick)
    quick.popup()
    assert quick.status.text().startswith("No folder open") and _rows(quick) == []


def test_matched_characters_are_bold_and_text_is_escaped() -> None:
    assert bold_html("a<b>&c", {0, 1, 5}) == "<b>a&lt;</b>b&gt;&amp;<b>c</b>"
    html = match_html(FuzzyMatch("app/gui/main_window.py", 0, (8, 13, 14, 15), True), "#888888")
    assert html == '<b>m</b>ain_<b>win</b>dow.py&nbsp;&nbsp;<span style="color:#888888">app/gui</span>'
    folder_match = match_html(FuzzyMatch("app/x.py", 0, (0, 1), False))
    assert folder_match.startswith("x.py") and "<b>ap</b>p" in folder_match
