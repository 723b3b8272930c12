"""Ghost-text bookkeeping: what is proposed, and what typing or partial accepts leave.

Pure logic, no Qt: the editor asks these questions on every keystroke.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"\s*[\w]+|\s*[^\w\s]+|\s+")


@dataclass(frozen=True)
class Ghost:
    """A proposal of ``text`` at document ``position`` for document ``revision``."""

    position: int
    text: str

    def after_typing(self, typed: str) -> Ghost | None:
        """Typing what the ghost shows consumes it; anything else drops it."""
        if typed and self.text.startswith(typed) and len(typed) < len(self.text):
            return Ghost(self.position + len(typed), self.text[len(typed) :])
        return None

    def next_word(self) -> str:
        match = _WORD.match(self.text)
        return match.group(0) if match else self.text

    def next_line(self) -> str:
        newline = self.text.find("\n")
        if newline == -1:
            return self.text
        # The first line, or the line break plus the next line when the ghost starts with one.
        if newline == 0:
            second = self.text.find("\n", 1)
            return self.text if second == -1 else self.text[:second]
        return self.text[: newline + 1]

    def without_prefix(self, accepted: str) -> Ghost | None:
        rest = self.text[len(accepted) :]
        return Ghost(self.position + len(accepted), rest) if rest else None
