"""Tab rules without a window: order, the current tab, cycling, closing and reopening."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.workspace.documents import ClosedTab, OpenDocuments, same_path


def opened(tmp_path: Path, *names: str) -> OpenDocuments:
    docs = OpenDocuments()
    for name in names:
        docs.add(name, tmp_path / name)
    return docs


def test_a_new_document_goes_after_the_current_one_and_becomes_current(tmp_path: Path) -> None:
    docs = opened(tmp_path, "a", "b", "c")
    docs.set_current("a")
    docs.add("d", tmp_path / "d")
    assert docs.ids == ("a", "d", "b", "c")
    assert docs.current == "d"


def test_cycling_wraps_around_both_ways(tmp_path: Path) -> None:
    docs = opened(tmp_path, "a", "b", "c")
    assert docs.current == "c"
    assert docs.neighbour(1) == "a"
    assert docs.neighbour(-1) == "b"
    docs.set_current("a")
    assert docs.neighbour(-1) == "c"


def test_closing_the_current_tab_brings_its_right_neighbour_else_its_left(tmp_path: Path) -> None:
    docs = opened(tmp_path, "a", "b", "c")
    docs.set_current("b")
    assert docs.remove("b") == "c"
    assert docs.remove("c") == "a"
    assert docs.remove("a") is None
    assert docs.ids == () and docs.current is None


def test_closing_another_tab_keeps_the_current_one(tmp_path: Path) -> None:
    docs = opened(tmp_path, "a", "b", "c")
    assert docs.remove("a") == "c"
    assert docs.ids == ("b", "c")


def test_reopen_gives_back_the_last_closed_file_with_its_caret(tmp_path: Path) -> None:
    docs = opened(tmp_path, "a", "b")
    docs.add("untitled", None)
    docs.remove("a", caret=12, scroll=3)
    docs.remove("untitled", caret=5)  # nothing to reopen: never saved
    docs.remove("b", caret=7)
    assert docs.pop_closed() == ClosedTab(tmp_path / "b", 7, 0, 0)
    assert docs.pop_closed() == ClosedTab(tmp_path / "a", 12, 3, 0)
    assert docs.pop_closed() is None


def test_reopen_skips_a_file_that_is_open_again(tmp_path: Path) -> None:
    docs = opened(tmp_path, "a", "b")
    docs.remove("a")
    docs.remove("b")
    docs.add("b2", tmp_path / "b")  # opened again by hand
    assert docs.pop_closed() == ClosedTab(tmp_path / "a", 0, 0, 0)


def test_the_closed_stack_is_bounded_and_keeps_one_entry_per_file(tmp_path: Path) -> None:
    docs = OpenDocuments(max_closed=2)
    for name in ("a", "b", "c", "a"):
        docs.add(name, tmp_path / name)
        docs.remove(name)
    assert [c.path.name for c in docs.closed] == ["c", "a"]


def test_one_document_per_file_under_any_name(tmp_path: Path) -> None:
    real = tmp_path / "real.py"
    real.write_text("x = 1\n")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    docs = OpenDocuments()
    docs.add("real", real)
    assert docs.find(link) == "real"
    assert same_path(link, tmp_path / "sub" / ".." / "real.py")
    with pytest.raises(ValueError, match="already open"):
        docs.add("other", link)
    with pytest.raises(ValueError, match="already open"):
        docs.add("real", tmp_path / "x.py")


def test_moving_a_tab_changes_the_order_only(tmp_path: Path) -> None:
    docs = opened(tmp_path, "a", "b", "c")
    docs.move("c", 0)
    assert docs.ids == ("c", "a", "b") and docs.current == "c"
    assert docs.neighbour(1) == "a"


def test_a_save_as_changes_which_file_a_document_is(tmp_path: Path) -> None:
    docs = OpenDocuments()
    docs.add("untitled", None)
    assert docs.find(tmp_path / "new.py") is None
    docs.set_path("untitled", tmp_path / "new.py")
    assert docs.find(tmp_path / "new.py") == "untitled" and docs.path_of("untitled") == tmp_path / "new.py"
