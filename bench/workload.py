"""Deterministic benchmark inputs: real code, cut to exact token budgets with the model's own tokenizer.

Benchmarks compare runs with each other, so every run must see the same text. The text is
standard-library source that is *not* in the synthetic tokenizer's training corpus, so
its compression is what a user's own code would get, not a flattering best case.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: Real code nobody on the project wrote, present on every CPython.
_SOURCE_MODULES: tuple[str, ...] = (
    "inspect.py", "pathlib.py", "tarfile.py", "zipfile.py", "zipfile/__init__.py", "typing.py",
    "subprocess.py", "enum.py", "configparser.py",
)

Tokenize = Callable[[str], list[int]]


def code_text() -> str:
    """About 1 MB of Python source, the same on every run of one Python version."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts = [(stdlib / rel).read_text(encoding="utf-8") for rel in _SOURCE_MODULES if (stdlib / rel).is_file()]
    if not parts:
        raise RuntimeError("no standard-library source found for the benchmark text")
    return "\n\n".join(parts)


def cut_to_tokens(text: str, n_tokens: int, tokenize: Tokenize, from_end: bool = False) -> str:
    """The longest start (or end) of ``text`` that tokenizes to at most ``n_tokens`` tokens.

    Binary search on characters: token boundaries move when text is cut, so counting the
    tokens of a slice is the only exact way.
    """
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        piece = text[len(text) - mid :] if from_end else text[:mid]
        if len(tokenize(piece)) <= n_tokens:
            lo = mid
        else:
            hi = mid - 1
    return text[len(text) - lo :] if from_end else text[:lo]


@dataclass(frozen=True)
class FimDocument:
    """A document split at the caret, sized in tokens as a user's file would be."""

    prefix: str
    suffix: str
    prefix_tokens: int
    suffix_tokens: int


def fim_document(tokenize: Tokenize, n_before: int, n_after: int) -> FimDocument:
    """``n_before`` tokens of code before the caret and ``n_after`` after it.

    The caret sits after the indentation of a fresh line inside a function, where a
    completion is typically asked for.
    """
    text = code_text()
    head = cut_to_tokens(text, n_before, tokenize)
    head = head[: head.rfind("\n") + 1]  # whole lines before the caret
    indent = "        "
    prefix = head + indent
    rest = text[len(head) :]
    suffix = "\n" + cut_to_tokens(rest, n_after, tokenize)
    return FimDocument(prefix, suffix, len(tokenize(prefix)), len(tokenize(suffix)))


def exact_token_prompt(tokenize: Tokenize, n_tokens: int) -> str:
    """Text of exactly ``n_tokens`` tokens when the tokenizer allows it (±1 otherwise)."""
    return cut_to_tokens(code_text(), n_tokens, tokenize)


def large_source_file(n_lines: int = 5000) -> str:
    """A realistic Python file of ``n_lines`` lines: real code repeated, not one line pattern."""
    lines = code_text().splitlines()
    out: list[str] = []
    while len(out) < n_lines:
        out.extend(lines[: n_lines - len(out)])
    return "\n".join(out) + "\n"
