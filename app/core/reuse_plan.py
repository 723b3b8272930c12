"""Which parts of the KV cache a new prompt can keep: the plan, not the llama.cpp calls.

Why more than the common prefix? A FIM prompt (SPM) reads ``<fim_suffix> suffix
<fim_middle> prefix``. A click three lines down moves those three lines from the start
of the suffix to the end of the prefix: the first token after ``<fim_suffix>`` changes,
so prefix-only reuse re-evaluates the whole file (82 s for 2,950 tokens of a 3B model on
two cores). Yet almost every token is still in the cache, only at another position.
llama.cpp can move cached tokens (``llama_memory_seq_add``: a RoPE rotation of their
keys), so the engine keeps

* the common prefix, exact;
* up to ``max_blocks`` *moved blocks*: runs of the new prompt found anywhere in the old
  cache after that prefix, in any order — a click moves the rest of the file left, a
  jump up brings lines from the end of the prompt to its front, and llama-server's
  greedy forward walk (``--cache-reuse``) finds neither past one inserted token;
* and evaluates only the gaps between them and the tail.

A moved block is approximate: its keys and values were computed next to other
neighbours. ``ReuseMode.EXACT`` therefore keeps the prefix only, and only as far as the
cache is known to be exact (``exact_len``).

Pure Python over token ids, no llama.cpp: the engine executes the plan, tests check it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class ReuseMode(str, enum.Enum):
    """How a request may reuse the KV cache (a user setting).

    EXACT: the cache holds exactly what a cold run would evaluate, at the same positions
    (common prefix and exact per-document snapshots only), so a completion is the cold
    run's up to CPU rounding. FAST: moved blocks too, so a click or a jump re-evaluates a
    few lines instead of the file. FAST is the default because the latency gap is
    minutes versus a second on a laptop CPU; its quality cost is measured by the
    edit-session benchmark (teacher-forced agreement with a cold run), not assumed.
    """

    EXACT = "exact"
    FAST = "fast"


@dataclass(frozen=True)
class ShiftPolicy:
    """Limits on moved blocks, in tokens.

    ``min_block``: shorter runs are re-evaluated. Each block can open a gap, and each gap
    costs one more llama_decode (a full pass over the weights, ~0.1 s for a 3B model on
    a laptop CPU), and short common runs are mostly coincidences (``):\\n        return``)
    whose cached values belong to another place in the file.
    ``max_blocks``: bounds the decodes and the planning work.
    ``fresh_tail``: the last tokens of the prompt (the lines at the caret, which the first
    generated token depends on most) are always evaluated, never moved. 0 keeps only the
    last token fresh, which must run anyway for its logits.
    ``decode_cost``: a gap's fixed cost in token-equivalents when comparing a plan with
    prefix-only reuse (a decode of a few tokens costs about as much as this many).
    """

    min_block: int = 16
    max_blocks: int = 8
    fresh_tail: int = 0
    decode_cost: int = 8

    def __post_init__(self) -> None:
        if self.min_block < 1 or self.max_blocks < 0 or self.fresh_tail < 0 or self.decode_cost < 0:
            raise ValueError(f"invalid shift policy {self}")


@dataclass(frozen=True)
class MovedBlock:
    """``new[new_start:new_start+length] == old[old_start:old_start+length]``."""

    new_start: int
    old_start: int
    length: int

    @property
    def new_end(self) -> int:
        return self.new_start + self.length

    @property
    def old_end(self) -> int:
        return self.old_start + self.length

    @property
    def delta(self) -> int:
        """How far the block moves (positive: to the right)."""
        return self.new_start - self.old_start


@dataclass(frozen=True)
class ReusePlan:
    """Turn a cache holding ``old`` into one holding the ``n_target`` new tokens.

    ``prefix`` tokens stay in place, ``blocks`` (sorted by ``new_start``, all at or after
    ``prefix``) move, everything else — ``fresh_spans`` — is evaluated.
    """

    n_target: int
    prefix: int
    blocks: tuple[MovedBlock, ...] = ()

    @property
    def shifted(self) -> int:
        return sum(block.length for block in self.blocks)

    @property
    def reused(self) -> int:
        return self.prefix + self.shifted

    @property
    def evaluated(self) -> int:
        return self.n_target - self.reused

    @property
    def fresh_spans(self) -> tuple[tuple[int, int], ...]:
        """The ``[start, end)`` runs of the new prompt that are evaluated, in order."""
        spans: list[tuple[int, int]] = []
        position = self.prefix
        for block in self.blocks:
            if block.new_start > position:
                spans.append((position, block.new_start))
            position = block.new_end
        if position < self.n_target:
            spans.append((position, self.n_target))
        return tuple(spans)

    @property
    def interior_gaps(self) -> int:
        """Fresh runs with a moved block after them: each needs its own decode in a
        second sequence, since llama.cpp appends to a sequence only at its end."""
        return sum(1 for start, _ in self.fresh_spans if any(b.new_start > start for b in self.blocks))

    def cost(self, policy: ShiftPolicy) -> int:
        return self.evaluated + policy.decode_cost * self.interior_gaps


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix (numpy: a 16K-token prompt in microseconds)."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    x = np.asarray(a[:n], dtype=np.int64)
    y = np.asarray(b[:n], dtype=np.int64)
    diff = np.flatnonzero(x != y)
    return int(diff[0]) if diff.size else n


#: Tokens per anchor: runs are found from windows of this many equal tokens.
_ANCHOR = 8
#: Candidate positions kept per anchor: a file of identical lines must not make the
#: search quadratic; the real move is almost always among the first few.
_MAX_CANDIDATES = 32
_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)


def _window_hashes(tokens: np.ndarray, k: int) -> np.ndarray:
    """A 64-bit hash of every window of ``k`` tokens (collisions are checked later)."""
    n = len(tokens) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    values = tokens.astype(np.uint64)
    result = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(k):
            result = result * _HASH_BASE + values[offset : offset + n]
    return result


def _run_length(old: np.ndarray, new: np.ndarray, j: int, i: int, limit: int) -> int:
    """How many tokens ``old[j:]`` and ``new[i:]`` share from their start, at most ``limit``."""
    length = 0
    step = 256
    while length < limit:
        size = min(step, limit - length)
        equal = old[j + length : j + length + size] == new[i + length : i + length + size]
        if equal.all():
            length += size
            step *= 2
        else:
            return length + int(np.argmin(equal))
    return length


def find_moved_blocks(
    old: Sequence[int],
    new: Sequence[int],
    old_start: int,
    new_start: int,
    new_end: int,
    policy: ShiftPolicy,
) -> list[MovedBlock]:
    """Non-overlapping runs of ``new[new_start:new_end]`` found in ``old[old_start:]``.

    Greedy, longest first, in any order: every maximal common run (one per diagonal
    stretch, found from 8-token anchors) is a candidate; the longest is taken, the others
    are trimmed where they overlap it in either sequence, and so on. Sorted by
    ``new_start``.
    """
    k = min(_ANCHOR, policy.min_block)
    if policy.max_blocks == 0 or new_end - new_start < policy.min_block or len(old) - old_start < policy.min_block:
        return []
    old_arr = np.asarray(old, dtype=np.int64)
    new_arr = np.asarray(new[:new_end], dtype=np.int64)
    index: dict[int, list[int]] = {}
    for j, key in enumerate(_window_hashes(old_arr[old_start:], k).tolist(), start=old_start):
        bucket = index.get(key)
        if bucket is None:
            index[key] = [j]
        elif len(bucket) < _MAX_CANDIDATES:
            bucket.append(j)
    runs: list[tuple[int, int, int]] = []  # (length, new position, old position)
    covered: dict[int, int] = {}  # diagonal (old - new) -> first new position not yet explained
    for i, key in enumerate(_window_hashes(new_arr[new_start:], k).tolist(), start=new_start):
        for j in index.get(key, ()):
            diagonal = j - i
            if covered.get(diagonal, -1) > i:
                continue  # inside a run already found on this diagonal
            length = _run_length(old_arr, new_arr, j, i, min(len(old_arr) - j, new_end - i))
            covered[diagonal] = i + max(length, 1)
            if length >= policy.min_block:
                runs.append((length, i, j))
    chosen: list[MovedBlock] = []
    while runs and len(chosen) < policy.max_blocks:
        runs.sort(reverse=True)
        length, i, j = runs.pop(0)
        block = MovedBlock(i, j, length)
        chosen.append(block)
        trimmed: list[tuple[int, int, int]] = []
        for other_length, oi, oj in runs:
            # Offsets t in [0, other_length) that overlap the chosen block in either sequence.
            cuts = sorted(
                [
                    (max(0, block.new_start - oi), min(other_length, block.new_end - oi)),
                    (max(0, block.old_start - oj), min(other_length, block.old_end - oj)),
                ]
            )
            start = 0
            for cut_start, cut_end in cuts:
                if cut_start >= cut_end:
                    continue
                if cut_start - start >= policy.min_block:
                    trimmed.append((cut_start - start, oi + start, oj + start))
                start = max(start, cut_end)
            if other_length - start >= policy.min_block:
                trimmed.append((other_length - start, oi + start, oj + start))
        runs = trimmed
    return sorted(chosen, key=lambda b: b.new_start)


def plan_reuse(
    old: Sequence[int],
    new: Sequence[int],
    *,
    mode: ReuseMode,
    exact_len: int,
    need_logits: bool,
    can_shift: bool,
    policy: ShiftPolicy,
) -> ReusePlan:
    """The cheapest way from a cache holding ``old`` to one holding ``new``.

    ``exact_len``: how many leading tokens of ``old`` are known exact (nothing moved
    before them). ``need_logits``: the last new token must be evaluated, for the logits
    the first generated token is sampled from.
    """
    n = len(new)
    cover = n - 1 if need_logits else n
    prefix = max(0, min(common_prefix(old, new), cover))
    if mode is ReuseMode.EXACT:
        return ReusePlan(n, min(prefix, exact_len))
    plain = ReusePlan(n, prefix)
    if not can_shift:
        return plain
    end = min(cover, n - policy.fresh_tail)
    blocks = find_moved_blocks(old, new, prefix, prefix, end, policy)
    if not blocks:
        return plain
    shifted = ReusePlan(n, prefix, tuple(blocks))
    return shifted if shifted.cost(policy) < plain.cost(policy) else plain
