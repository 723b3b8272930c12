"""Turning generated tokens into text a person sees, safely and without repeats."""

from __future__ import annotations

import codecs


class Utf8Stream:
    """Incremental UTF-8 decoding: a character split across tokens is emitted whole.

    Byte-level BPE often splits a multi-byte character (é, 世, an emoji) over two or three
    tokens; decoding each token alone would show replacement characters mid-stream.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


def first_meaningful_line(text: str) -> str:
    """The first non-blank line, stripped: what a completion must not write again."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def repeats_suffix_at(completion: str, suffix: str, min_chars: int = 4) -> int | None:
    """Index where ``completion`` starts re-writing the code after the caret, if it does.

    Models often finish the middle and then carry on with the next line that already
    exists; that tail is trimmed. Two checks: a completion line equal to the suffix's
    first non-blank line, or a completion tail equal to the suffix's start.
    """
    anchor = first_meaningful_line(suffix)
    if len(anchor) >= min_chars:
        offset = 0
        for line in completion.splitlines(keepends=True):
            if line.strip() == anchor and offset > 0:
                # Drop the newline that led into the repeated line too.
                return offset - 1 if completion[offset - 1] == "\n" else offset
            offset += len(line)
    stripped_suffix = suffix.lstrip()
    for k in range(min(len(completion), len(stripped_suffix)), min_chars - 1, -1):
        if completion.endswith(stripped_suffix[:k]) and stripped_suffix[:k].strip():
            return len(completion) - k
    return None
