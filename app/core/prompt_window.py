"""Which part of a document a narrowed prompt covers, and why that part stays put.

On a laptop CPU the whole file cannot be read before the first token (a 3B model reads
~20 tokens/s on two cores), so a request is narrowed to a *window* of lines around the
caret. If that window were cut afresh around every new caret, its edges would move with
each click and each accepted line, and every token behind a moved edge would be
evaluated again (a click three lines down cost 41 tokens, ~3.5 s). So a window is
remembered per document and reused as long as the caret stays inside it: a click, a new
line, an accepted ghost or a paste then only move text between the suffix and the
prefix, which the KV cache keeps (``app.core.reuse_plan``). A caret that leaves the
window — a far jump — gets a new one. In idle time the window grows line block by line
block towards the whole prompt (``grow``), each step a small prefill that a keystroke
cancels without losing the steps before it.

A window is stored as the number of characters cut from the start of the document and
from its end (cut at line boundaries where lines fit): an edit inside the window (where
the caret is) changes neither, so the same lines stay covered while the user types.

Pure string arithmetic, no tokens and no llama.cpp: the engine builds prompts from the
parts, the tests check the edges.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Of the characters a growth step adds, this share goes before the caret (the rest
#: after it), like the prompt budget's prefix share.
GROW_PREFIX_SHARE = 0.75


@dataclass(frozen=True)
class PromptWindow:
    """The lines of a document a prompt covers.

    ``head_cut``: characters before the window.
    ``tail_cut``: characters after it.
    ``full``: the whole prompt — repository context and the context's own limits
    included — rather than a window of the file.
    """

    head_cut: int
    tail_cut: int
    full: bool = False

    def __post_init__(self) -> None:
        if self.head_cut < 0 or self.tail_cut < 0:
            raise ValueError(f"invalid window {self}")

    @property
    def whole_file(self) -> bool:
        return self.head_cut == 0 and self.tail_cut == 0


#: The whole prompt, as the engine would build it without a latency budget.
FULL_PROMPT = PromptWindow(0, 0, full=True)


def window_parts(prefix: str, suffix: str, window: PromptWindow) -> tuple[str, str] | None:
    """The text before and after the caret that ``window`` keeps, or None when the caret
    has left the window (then a new window is cut around the caret).

    The edges need not sit at line boundaries any more: edits happen at the caret, inside
    the window, so an edge's offset from its end of the document keeps pointing at the
    same text; only an edit that spans an edge (an undo of a paste) moves it, and then
    the window simply covers slightly different text.
    """
    if window.full or window.head_cut > len(prefix) or window.tail_cut > len(suffix):
        return None
    return prefix[window.head_cut :], suffix[: len(suffix) - window.tail_cut]


def grow(prefix: str, suffix: str, window: PromptWindow, chars: int) -> PromptWindow:
    """``window`` widened by about ``chars`` characters, in whole lines: three quarters
    before the caret and one quarter after it, or all on the side that still has text.
    Each side that can grow gains at least one line, so growth always ends."""
    if window.full or window.whole_file:
        return window
    head, tail = window.head_cut, window.tail_cut
    share = GROW_PREFIX_SHARE if head and tail else (1.0 if head else 0.0)
    if head:
        target = max(0, head - max(1, int(chars * share)))
        # The start of the line holding ``target``: before ``head``, so at least one line.
        head = prefix.rfind("\n", 0, target) + 1 if target else 0
    if tail:
        end = len(suffix) - tail
        target = min(len(suffix), end + max(1, int(chars * (1 - share))))
        newline = suffix.find("\n", max(target - 1, end))
        new_end = newline + 1 if newline >= 0 else len(suffix)
        tail = len(suffix) - new_end
    return PromptWindow(head, tail)
