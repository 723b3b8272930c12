"""Completions remembered by the exact place they were asked for, served while typing ahead.

A completion asked at caret ``origin`` stays valid while the text before ``origin`` and
the text after the caret are what they were, and what was typed since (``text[origin:caret]``)
is the start of the completion. Then the rest of it is the answer, with no engine at all:
typing the characters a ghost showed, coming back after a click elsewhere, or deleting a
wrong character all land on a place the model has already answered. llama.vim looks back
up to 128 typed characters the same way.

The key is exact, within a window: digests of up to ``WINDOW`` characters before the
origin and after the caret (a prompt never sees more than a few tens of thousands of
characters), plus the request settings and the file's path, which change the prompt too.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

#: How many typed characters a lookup looks back over.
MAX_TYPED_AHEAD = 128
#: Characters on each side that make a place exact; beyond them a change is ignored.
WINDOW = 64 * 1024
DEFAULT_CAPACITY = 256


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def before_digest(text: str, origin: int) -> bytes:
    return _digest(text[max(0, origin - WINDOW) : origin])


def after_digest(text: str, caret: int) -> bytes:
    return _digest(text[caret : caret + WINDOW])


@dataclass(frozen=True)
class Place:
    """Where a completion was asked: the caret, and digests of the text around it.

    ``context`` holds whatever else shapes the prompt (settings, path): a place is only the
    same place under the same context.
    """

    origin: int
    before: bytes
    after: bytes
    context: Hashable

    @classmethod
    def at(cls, text: str, caret: int, context: Hashable) -> Place:
        return cls(caret, before_digest(text, caret), after_digest(text, caret), context)

    def typed_since(self, text: str, caret: int, context: Hashable, after: bytes | None = None) -> str | None:
        """What was typed at this place to reach ``caret`` in ``text``; None: another place.

        ``after`` is ``after_digest(text, caret)`` when the caller already has it.
        """
        if context != self.context or not 0 <= caret - self.origin <= MAX_TYPED_AHEAD:
            return None
        if (after if after is not None else after_digest(text, caret)) != self.after:
            return None
        if before_digest(text, self.origin) != self.before:
            return None
        return text[self.origin : caret]


def remainder(completion: str, typed: str | None) -> str | None:
    """The part of ``completion`` still to show after ``typed``; None when nothing is left
    or the typing went another way."""
    if typed is None or not completion.startswith(typed) or len(typed) >= len(completion):
        return None
    return completion[len(typed) :]


@dataclass(frozen=True)
class CacheHit:
    place: Place
    completion: str
    rest: str


class CompletionCache:
    """Finished completions by place, least recently used dropped first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        #: after-digest and context → {place: completion}: one digest of the text after the
        #: caret narrows a lookup to the few entries worth checking.
        self._by_after: dict[tuple[bytes, Hashable], dict[Place, str]] = {}
        self._order: OrderedDict[Place, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._order)

    def store(self, place: Place, completion: str) -> None:
        if not completion:
            return
        self._by_after.setdefault((place.after, place.context), {})[place] = completion
        self._order[place] = None
        self._order.move_to_end(place)
        while len(self._order) > self.capacity:
            old, _ = self._order.popitem(last=False)
            bucket = self._by_after.get((old.after, old.context), {})
            bucket.pop(old, None)
            if not bucket:
                self._by_after.pop((old.after, old.context), None)

    def lookup(self, text: str, caret: int, context: Hashable) -> CacheHit | None:
        """The completion asked nearest before ``caret`` whose start was typed since."""
        after = after_digest(text, caret)
        candidates = self._by_after.get((after, context))
        if not candidates:
            return None
        for place in sorted(candidates, key=lambda p: -p.origin):  # the nearest origin is the most specific
            completion = candidates[place]
            rest = remainder(completion, place.typed_since(text, caret, context, after))
            if rest is not None:
                self._order.move_to_end(place)
                return CacheHit(place, completion, rest)
        return None

    def clear(self) -> None:
        self._by_after.clear()
        self._order.clear()
