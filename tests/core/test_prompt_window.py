"""Prompt windows: which part of a document a narrowed prompt covers, and how it grows."""

from __future__ import annotations

import pytest

from app.core.prompt_window import FULL_PROMPT, PromptWindow, grow, window_parts

TEXT = "".join(f"line {i:02d}\n" for i in range(40))  # 8 characters a line
CARET = TEXT.index("line 20")


def test_the_parts_are_the_text_inside_the_window_on_each_side_of_the_caret() -> None:
    window = PromptWindow(head_cut=TEXT.index("line 17"), tail_cut=len(TEXT) - TEXT.index("line 23"))
    assert window_parts(TEXT[:CARET], TEXT[CARET:], window) == (
        "line 17\nline 18\nline 19\n", "line 20\nline 21\nline 22\n",
    )


def test_edits_and_moves_inside_the_window_keep_its_edges_on_the_same_text() -> None:
    window = PromptWindow(head_cut=TEXT.index("line 17"), tail_cut=len(TEXT) - TEXT.index("line 23"))
    edited = TEXT[:CARET] + "x = 1\n" + TEXT[CARET:]
    caret = CARET + len("x = 1\n") + 3  # typed a line, then moved into the next one
    prefix, suffix = window_parts(edited[:caret], edited[caret:], window) or ("", "")
    assert prefix.startswith("line 17\n") and prefix.endswith("x = 1\nlin")
    assert suffix == "e 20\nline 21\nline 22\n"


@pytest.mark.parametrize("caret", [TEXT.index("line 16"), TEXT.index("line 24")])
def test_a_caret_outside_the_window_asks_for_a_new_one(caret: int) -> None:
    window = PromptWindow(head_cut=TEXT.index("line 17"), tail_cut=len(TEXT) - TEXT.index("line 23"))
    assert window_parts(TEXT[:caret], TEXT[caret:], window) is None
    assert window_parts(TEXT[:CARET], TEXT[CARET:], FULL_PROMPT) is None


def test_growth_adds_whole_lines_mostly_before_the_caret_and_ends_at_the_whole_file() -> None:
    window = PromptWindow(head_cut=TEXT.index("line 18"), tail_cut=len(TEXT) - TEXT.index("line 21"))
    wider = grow(TEXT[:CARET], TEXT[CARET:], window, chars=32)
    assert wider.head_cut == TEXT.index("line 15")  # 24 characters: three lines before
    assert wider.tail_cut == len(TEXT) - TEXT.index("line 22")  # 8: one line after
    steps = 0
    while not wider.whole_file:
        bigger = grow(TEXT[:CARET], TEXT[CARET:], wider, chars=1)  # at least a line a side
        assert bigger.head_cut < wider.head_cut or bigger.tail_cut < wider.tail_cut
        wider, steps = bigger, steps + 1
    assert steps <= 20
    assert grow(TEXT[:CARET], TEXT[CARET:], wider, chars=100) == wider


def test_one_side_used_up_gives_the_whole_step_to_the_other() -> None:
    window = PromptWindow(head_cut=0, tail_cut=len(TEXT) - TEXT.index("line 21"))
    wider = grow(TEXT[:CARET], TEXT[CARET:], window, chars=32)
    assert wider == PromptWindow(0, len(TEXT) - TEXT.index("line 25"))
