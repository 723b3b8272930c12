"""Which documents are open as tabs, in which order, which is current, and what was closed.

Qt-free, so the tab rules (cycling, which tab follows a closed one, reopening the last
closed tab, one tab per file) are tested without a window. The window's tab widget
mirrors this state: it asks here what to do and shows the answer.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("starpad.workspace")

#: Closed tabs remembered for Ctrl+Shift+T; older ones are forgotten.
MAX_CLOSED = 20


@dataclass(frozen=True)
class ClosedTab:
    """A file tab that was closed: enough to reopen it where the user was."""

    path: Path
    caret: int = 0
    scroll: int = 0
    #: Where its tab was, so it comes back there.
    index: int = 0


def same_path(a: Path, b: Path) -> bool:
    """Two names of one file (symlinks, ``..``): one tab per file, whatever name opened it."""
    return os.path.realpath(a) == os.path.realpath(b)


class OpenDocuments:
    """The ordered set of open documents (by id), the current one and the closed-tab stack.

    Documents are keyed by the id the completion session uses too, so a tab, its session
    state and the engine's KV snapshot all refer to the same document.
    """

    def __init__(self, max_closed: int = MAX_CLOSED) -> None:
        self._order: list[str] = []
        self._paths: dict[str, Path | None] = {}
        self._current: str | None = None
        self._closed: list[ClosedTab] = []
        self._max_closed = max(0, max_closed)

    # ------------------------------------------------------------ queries
    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._order)

    @property
    def current(self) -> str | None:
        return self._current

    @property
    def closed(self) -> tuple[ClosedTab, ...]:
        """Closed file tabs, most recent last."""
        return tuple(self._closed)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._paths

    def path_of(self, doc_id: str) -> Path | None:
        return self._paths[doc_id]

    def find(self, path: Path) -> str | None:
        """The open document showing ``path`` (under any of its names), if any."""
        for doc_id in self._order:
            known = self._paths[doc_id]
            if known is not None and same_path(known, path):
                return doc_id
        return None

    def index(self, doc_id: str) -> int:
        return self._order.index(doc_id)

    def neighbour(self, step: int) -> str | None:
        """The document ``step`` places from the current one, wrapping around (Ctrl+Tab: +1)."""
        if not self._order:
            return None
        if self._current is None:
            return self._order[0]
        return self._order[(self._order.index(self._current) + step) % len(self._order)]

    # ------------------------------------------------------------ changes
    def add(self, doc_id: str, path: Path | None, index: int | None = None) -> None:
        """Open a document (after the current one by default) and make it current."""
        if doc_id in self._paths:
            raise ValueError(f"document {doc_id!r} is already open")
        if path is not None and self.find(path) is not None:
            raise ValueError(f"{path} is already open")
        if index is None:
            index = self._order.index(self._current) + 1 if self._current is not None else len(self._order)
        self._order.insert(max(0, min(index, len(self._order))), doc_id)
        self._paths[doc_id] = path
        self._current = doc_id

    def set_current(self, doc_id: str) -> None:
        if doc_id not in self._paths:
            raise KeyError(doc_id)
        self._current = doc_id

    def set_path(self, doc_id: str, path: Path | None) -> None:
        """Saved under a (new) name."""
        self._paths[doc_id] = path

    def move(self, doc_id: str, index: int) -> None:
        """The user dragged a tab to ``index``."""
        self._order.remove(doc_id)
        self._order.insert(max(0, min(index, len(self._order))), doc_id)

    def remove(self, doc_id: str, caret: int = 0, scroll: int = 0) -> str | None:
        """Close a document; the one that becomes current (its right neighbour, else its left).

        A file's tab is remembered for ``pop_closed``; an untitled one has nothing to reopen.
        """
        position = self._order.index(doc_id)
        self._order.pop(position)
        path = self._paths.pop(doc_id)
        if path is not None and self._max_closed:
            self._closed = [c for c in self._closed if not same_path(c.path, path)]
            self._closed.append(ClosedTab(path, max(0, caret), max(0, scroll), position))
            del self._closed[: -self._max_closed]
        if self._current == doc_id:
            self._current = self._order[min(position, len(self._order) - 1)] if self._order else None
        return self._current

    def pop_closed(self) -> ClosedTab | None:
        """The most recently closed file tab that is not open again (Ctrl+Shift+T)."""
        while self._closed:
            closed = self._closed.pop()
            if self.find(closed.path) is None:
                return closed
        return None
