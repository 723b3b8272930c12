"""Fuzzy matching for Quick Open (app.core.workspace.fuzzy): what matches, in which order, where."""

from __future__ import annotations

import time


from app.core.workspace.fuzzy import FuzzyIndex, match, normalise_query

PATHS = [
    "README.md",
    "main.py",
    "app/__init__.py",
    "app/gui/main_window.py",
    "app/gui/editor.py",
    "app/gui/quick_open.py",
    "app/gui/find_bar.py",
    "app/core/engine.py",
    "app/core/workspace/fuzzy.py",
    "app/core/workspace/ignore.py",
    "edits/notes/readme.txt",
    "tests/gui/test_editor.py",
    "docs/MainWindow.md",
    "src/mwin.c",
]


def _ranked(query: str, paths: list[str] = PATHS) -> list[str]:
    return [m.path for m in FuzzyIndex(paths).search(query, limit=50)]


def test_subsequence_matches_case_insensitively_and_others_do_not() -> None:
    assert match("MWIN", "app/gui/main_window.py") is not None
    assert match("gui/mw", "app/gui/main_window.py") is not None
    assert match("wm", "app/gui/main_window.py") is None  # order matters
    assert match("xyz", "app/gui/main_window.py") is None
    assert match("pyy", "app/gui/main_window.py") is None


def test_positions_point_at_the_matched_characters() -> None:
    path = "app/gui/main_window.py"
    found = match("mwin", path)
    assert found is not None and found.in_name
    assert "".join(path[i] for i in found.positions).lower() == "mwin"
    assert found.positions == (8, 13, 14, 15)  # m of main, then "win": the tightest window
    cross = match("gui/ed", "app/gui/editor.py")
    assert cross is not None and not cross.in_name  # a "/" in the query spans folders
    assert cross.positions == (4, 5, 6, 7, 8, 9)


def test_basename_matches_rank_before_folder_matches() -> None:
    ranked = _ranked("edit")
    # "editor.py" twice in file names first; "edits/…/readme.txt" only matches in its folder.
    assert ranked[:2] == ["app/gui/editor.py", "tests/gui/test_editor.py"]
    assert ranked[-1] == "edits/notes/readme.txt"


def test_word_starts_and_consecutive_runs_beat_scattered_letters() -> None:
    paths = ["hammerwall.py", "main_window.py", "MainWindow.md", "mwin.c"]
    ranked = _ranked("mw", paths)
    assert ranked[0] == "mwin.c"  # a consecutive run at the start of the name
    assert set(ranked[1:3]) == {"main_window.py", "MainWindow.md"}  # word starts: after "_", a camel hump
    assert ranked[3] == "hammerwall.py"  # letters in the middle of a word
    assert "README.md" not in _ranked("mw")


def test_exact_name_comes_first() -> None:
    assert _ranked("main")[0] == "main.py"
    assert _ranked("engine")[0] == "app/core/engine.py"
    assert _ranked("fuzzy")[0] == "app/core/workspace/fuzzy.py"


def test_shorter_path_wins_a_tie_and_order_is_stable() -> None:
    paths = ["deep/folder/util.py", "util.py", "other/util.py"]
    assert _ranked("util", paths) == ["util.py", "other/util.py", "deep/folder/util.py"]


def test_query_normalisation() -> None:
    assert normalise_query("  Main Win ") == "mainwin"
    assert normalise_query(r"gui\Edit") == "gui/edit"
    assert _ranked("main win") == _ranked("mainwin")


def test_empty_query_lists_paths_in_order() -> None:
    index = FuzzyIndex(PATHS)
    results = index.search("", limit=3)
    assert [m.path for m in results] == PATHS[:3]
    assert all(m.positions == () for m in results)


def test_narrowing_reuses_candidates_but_a_new_query_starts_over() -> None:
    index = FuzzyIndex(PATHS)
    assert {m.path for m in index.search("ed")} >= {"app/gui/editor.py", "tests/gui/test_editor.py"}
    assert [m.path for m in index.search("edit")][:2] == ["app/gui/editor.py", "tests/gui/test_editor.py"]
    assert index.last_match_count == 3
    # Not an extension of "edit": must not be filtered from the "edit" candidates.
    assert [m.path for m in index.search("ignore")] == ["app/core/workspace/ignore.py"]
    assert index.last_match_count == 1


def test_regex_characters_in_the_query_are_plain_characters() -> None:
    paths = ["a[b].py", "a.b", "x+y.txt", "c^d"]
    assert _ranked("[b]", paths) == ["a[b].py"]
    assert _ranked("+", paths) == ["x+y.txt"]
    assert _ranked("^", paths) == ["c^d"]
    assert _ranked("a.b", paths) == ["a.b"]  # "." is a dot, not any character


def test_characters_that_lower_to_two_keep_positions_aligned() -> None:
    found = match("x", "İstanbul/x.py")
    assert found is not None and found.positions == (9,)


def test_twenty_thousand_paths_per_keystroke_is_fast() -> None:
    words = ["core", "gui", "model", "view", "util", "test", "engine", "session", "cache", "widget"]
    paths = [f"src/{words[i % 10]}/{words[(i // 10) % 10]}_{i}/{words[(i // 100) % 10]}_file_{i}.py"
             for i in range(20_000)]
    index = FuzzyIndex(paths)
    worst = 0.0
    for query in ("e", "en", "eng", "engi", "engine", "s", "se", "ses", "sesf", "vwf", "cmv", "u_1"):
        started = time.perf_counter()
        index.search(query, limit=200)
        worst = max(worst, time.perf_counter() - started)
    # A keystroke must feel immediate even on a slow shared CPU (measured figures are in the report).
    assert worst < 0.5
