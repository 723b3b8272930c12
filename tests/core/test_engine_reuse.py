"""KV-cache reuse beyond the common prefix: moved blocks, snapshots, prefill, exact mode.

Real llama.cpp on the tiny generated model, on real files nobody on the project wrote
(CPython's ``json`` package), the way an editor moves around in them.
"""

from __future__ import annotations

import sysconfig
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.engine import (
    CancelToken,
    CompletionRequest,
    CompletionResult,
    CompletionStats,
    Engine,
    EngineConfig,
    ReuseMode,
    SamplingParams,
)
from app.core.reuse_plan import MovedBlock, ShiftPolicy, find_moved_blocks, plan_reuse

STDLIB = Path(sysconfig.get_paths()["stdlib"])
DECODER = (STDLIB / "json" / "decoder.py").read_text(encoding="utf-8")
ENCODER = (STDLIB / "json" / "encoder.py").read_text(encoding="utf-8")


def caret(text: str, line: int, column: int = 4) -> int:
    """Offset of (1-based ``line``, ``column``), the column clamped to the line."""
    lines = text.splitlines(keepends=True)
    return sum(len(x) for x in lines[: line - 1]) + min(column, len(lines[line - 1]) - 1)


def at(text: str, line: int, document: str = "decoder.py", max_tokens: int = 4) -> CompletionRequest:
    offset = caret(text, line)
    return CompletionRequest(text[:offset], text[offset:], max_tokens=max_tokens, document=document)


def budget(stats: CompletionStats) -> int:
    """The issue's bound for a move, a jump or a return: max(64 tokens, 5 % of the prompt)."""
    return max(64, stats.prompt_tokens // 20)


def assert_consistent(engine: Engine, result: CompletionResult) -> None:
    """The cache holds the prompt (then what was generated), at positions 0..n-1, and the
    scratch sequence is empty; the stats add up."""
    stats = result.stats
    kv = engine.kv_tokens
    assert kv[: stats.prompt_tokens] == tuple(result.prompt.tokens)
    assert engine.kv_positions() == (0, len(kv) - 1)
    assert engine.kv_positions(1) == (-1, -1)
    assert stats.reused_exact + stats.reused_shifted + stats.evaluated == stats.prompt_tokens
    assert stats.cached_tokens == stats.reused_exact + stats.reused_shifted
    assert sum(end - start for start, end in stats.fresh_spans) == stats.evaluated


@pytest.fixture()
def engine8k(tiny_model: Path) -> Iterator[Engine]:
    eng = Engine()
    eng.load(tiny_model, EngineConfig(n_ctx=8192, n_threads=2))
    yield eng
    eng.close()


# ------------------------------------------------------------------ the plan, pure
def test_a_caret_move_down_is_one_block_moved_left() -> None:
    """SPM: <pre><suf> L S <mid> P  ->  <pre><suf> S <mid> P L (the caret went below L)."""
    pre, suf, mid = 1, 3, 2
    lines = [list(range(100 + 10 * i, 110 + 10 * i)) for i in range(40)]
    L, S, P = lines[20], sum(lines[21:], []), sum(lines[:20], [])
    old = [pre, suf, *L, *S, mid, *P]
    new = [pre, suf, *S, mid, *P, *L]
    plan = plan_reuse(old, new, mode=ReuseMode.FAST, exact_len=len(old), need_logits=True, can_shift=True,
                      policy=ShiftPolicy(min_block=16))
    assert plan.prefix == 2
    assert plan.blocks[0] == MovedBlock(new_start=2, old_start=12, length=len(S) + 1 + len(P))
    assert plan.evaluated == len(L)  # one line, shorter than a block: evaluated
    exact = plan_reuse(old, new, mode=ReuseMode.EXACT, exact_len=len(old), need_logits=True, can_shift=True,
                       policy=ShiftPolicy())
    assert exact.blocks == () and exact.evaluated == len(new) - 2


def test_blocks_are_found_out_of_order() -> None:
    """A jump up brings the end of the prompt to its front: llama-server's forward walk
    misses it, the plan must not."""
    a, b = list(range(1000, 1100)), list(range(2000, 2100))
    plan = plan_reuse([7, *a, *b], [7, *b, *a, 5], mode=ReuseMode.FAST, exact_len=0, need_logits=True,
                      can_shift=True, policy=ShiftPolicy())
    assert plan.shifted == 200 and plan.evaluated == 1
    assert plan.fresh_spans == ((201, 202),)


def test_no_shift_without_model_support() -> None:
    old, new = [1, *range(100, 200)], [2, *range(100, 200)]
    plan = plan_reuse(old, new, mode=ReuseMode.FAST, exact_len=0, need_logits=True, can_shift=False,
                      policy=ShiftPolicy())
    assert plan.blocks == () and plan.evaluated == len(new)


tokens = st.lists(st.integers(min_value=0, max_value=12), max_size=300)


@settings(max_examples=200, deadline=None)
@given(old=tokens, new=tokens, min_block=st.integers(1, 40), start=st.integers(0, 50))
def test_moved_blocks_are_real_disjoint_runs(old: list[int], new: list[int], min_block: int, start: int) -> None:
    policy = ShiftPolicy(min_block=min_block, max_blocks=5)
    old_start, new_start = min(start, len(old)), min(start, len(new))
    blocks = find_moved_blocks(old, new, old_start, new_start, len(new), policy)
    assert len(blocks) <= 5
    for block in blocks:
        assert block.length >= min_block
        assert old[block.old_start : block.old_end] == new[block.new_start : block.new_end]
        assert block.old_start >= old_start and block.new_start >= new_start
    for first, second in zip(blocks, blocks[1:], strict=False):
        assert first.new_end <= second.new_start
    spans = sorted((b.old_start, b.old_end) for b in blocks)
    for (_, end), (start2, _) in zip(spans, spans[1:], strict=False):
        assert end <= start2


@settings(max_examples=100, deadline=None)
@given(old=tokens, new=tokens, need_logits=st.booleans())
def test_a_plan_covers_the_prompt_exactly_once(old: list[int], new: list[int], need_logits: bool) -> None:
    if not new:
        return
    plan = plan_reuse(old, new, mode=ReuseMode.FAST, exact_len=len(old), need_logits=need_logits,
                      can_shift=True, policy=ShiftPolicy(min_block=4))
    covered = [0] * len(new)
    for i in range(plan.prefix):
        covered[i] += 1
    for block in plan.blocks:
        for i in range(block.new_start, block.new_end):
            covered[i] += 1
    for start, end in plan.fresh_spans:
        for i in range(start, end):
            covered[i] += 1
    assert covered == [1] * len(new)
    assert plan.prefix <= len(old) and old[: plan.prefix] == new[: plan.prefix]
    if need_logits:
        assert plan.fresh_spans and plan.fresh_spans[-1][1] == len(new)  # the last token is evaluated


# ------------------------------------------------------------ fast mode, real engine
def test_moves_jumps_and_a_return_reevaluate_a_few_lines(engine8k: Engine) -> None:
    assert engine8k.reuse_mode is ReuseMode.FAST and engine8k.can_shift
    cold = engine8k.complete(at(DECODER, 200))
    assert cold.stats.evaluated == cold.stats.prompt_tokens > 2500
    assert_consistent(engine8k, cold)
    events = [
        ("3 lines down", at(DECODER, 203)),
        ("3 lines up", at(DECODER, 200)),
        ("100 lines up", at(DECODER, 100)),
        ("100 lines down", at(DECODER, 200)),
        ("another file", at(ENCODER, 150, document="encoder.py")),
        ("back", at(DECODER, 200)),
        ("back to the other", at(ENCODER, 150, document="encoder.py")),
    ]
    for name, request in events:
        result = engine8k.complete(request)
        assert_consistent(engine8k, result)
        stats = result.stats
        if name == "another file":
            continue  # never seen: evaluated cold
        assert stats.evaluated <= budget(stats), (name, stats)
        if name.startswith("back"):
            assert stats.restored == stats.cached_tokens > 0, name
        else:
            assert stats.reused_shifted > stats.prompt_tokens // 2, name
    assert set(engine8k.snapshot_documents) == {"decoder.py", "encoder.py"}


def test_generation_after_a_moved_block_agrees_with_a_cold_run(engine8k: Engine) -> None:
    """Teacher-forced top-1 agreement of the moved cache with a cold run's greedy tokens.

    Not equality: the moved keys were computed next to other neighbours, and even exact
    re-evaluation in other batch shapes flips near-ties of random weights. Measured here
    100 % for this move (and 98 % over five moves and jumps, exact-split control 99 %).
    """
    n = 32
    no_end = SamplingParams(logit_bias=tuple((t, -1e9) for t in engine8k.end_token_ids()))
    target = at(DECODER, 203, max_tokens=n)
    target = CompletionRequest(target.prefix, target.suffix, max_tokens=n, sampling=no_end, document="d")
    cold = engine8k.complete(target)
    assert cold.stats.generated_tokens == n

    engine8k.reset_cache()
    engine8k.prefill(at(DECODER, 200, document="d"))
    moved = engine8k.complete(target)
    assert_consistent(engine8k, moved)
    assert moved.stats.reused_shifted > 0 and moved.stats.evaluated <= budget(moved.stats)
    assert moved.stats.generated_tokens == n and moved.stop_reason == "max_tokens"
    generated = engine8k.kv_tokens[moved.stats.prompt_tokens :]
    assert generated == moved.tokens[: len(generated)] and len(generated) == n - 1

    engine8k.reset_cache()
    engine8k.prefill(at(DECODER, 200))
    scores = engine8k.score(cold.prompt.tokens, list(cold.tokens), reuse=ReuseMode.FAST)
    agreement = sum(s.argmax == s.target for s in scores) / len(scores)
    assert agreement >= 0.8, agreement


class CancelAfter(CancelToken):
    """Reads as cancelled from its ``n``-th check on: the engine checks between batches
    and llama.cpp after every graph node, so a range of ``n`` lands the cancel at every
    stage of a request (before anything moved, in a gap, in the tail, mid-batch)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.checks_left = n

    @property
    def cancelled(self) -> bool:
        self.checks_left -= 1
        return self.checks_left < 0


@pytest.mark.parametrize("checks", [0, 1, 2, 3, 5, 40, 400])
def test_a_cancelled_prefill_keeps_what_it_moved(engine8k: Engine, checks: int) -> None:
    """A user request interrupts an idle prefill after a jump: wherever the cancel lands,
    the cache stays consistent and the request still re-evaluates only a few lines."""
    engine8k.complete(at(DECODER, 200))
    result = engine8k.prefill(at(DECODER, 100), CancelAfter(checks))  # a jump: blocks and gaps
    kv = engine8k.kv_tokens
    assert engine8k.kv_positions() == (0, len(kv) - 1) and engine8k.kv_positions(1) == (-1, -1)
    if not result.cancelled:
        assert kv == tuple(result.prompt.tokens[:-1])
    request = engine8k.complete(at(DECODER, 100))
    assert_consistent(engine8k, request)
    assert request.stats.evaluated <= budget(request.stats)


def test_a_snapshot_right_after_a_move_restores_correctly(engine8k: Engine) -> None:
    """llama.cpp rotates moved keys at the next decode; a snapshot taken before it would
    store unrotated keys, so the engine applies the move first."""
    engine8k.complete(at(DECODER, 200))
    engine8k.prefill(at(DECODER, 100), CancelAfter(2))  # moved, then cancelled before a decode
    kv = engine8k.kv_tokens
    assert engine8k.save_snapshot("decoder.py") > 0
    assert engine8k.kv_tokens == kv and engine8k.kv_positions() == (0, len(kv) - 1)
    engine8k.complete(at(ENCODER, 150, document="encoder.py"))
    back = engine8k.complete(at(DECODER, 100))
    assert_consistent(engine8k, back)
    assert back.stats.restored > 0 and back.stats.evaluated <= budget(back.stats)


# ----------------------------------------------------------------------- exact mode
def test_exact_mode_holds_what_a_cold_run_evaluates(tiny_model: Path) -> None:
    engine = Engine()
    engine.load(tiny_model, EngineConfig(n_ctx=8192, n_threads=2, reuse=ReuseMode.EXACT))
    requests = [
        at(DECODER, 200), at(DECODER, 203), at(DECODER, 100),
        at(ENCODER, 150, document="encoder.py"), at(DECODER, 100), at(DECODER, 101),
    ]
    restored = []
    for request in requests:
        result = engine.complete(request)
        assert_consistent(engine, result)
        assert result.stats.reused_shifted == 0
        assert engine.kv_exact_tokens == len(engine.kv_tokens)
        restored.append(result.stats.restored)
    assert restored[4] == restored[4] > 2000 and restored[3] == 0  # the return came from the snapshot
    final = at(DECODER, 150)
    engine.prefill(final)
    cold_tokens = engine.build_prompt(final).tokens
    assert engine.kv_tokens == tuple(cold_tokens[:-1])  # the last one runs with the completion
    done = engine.complete(final)
    assert engine.kv_tokens[: len(cold_tokens)] == tuple(cold_tokens) and done.stats.evaluated == 1
    engine.close()


def test_switching_to_exact_drops_what_was_moved(engine8k: Engine) -> None:
    engine8k.complete(at(DECODER, 200))
    moved = engine8k.complete(at(DECODER, 203))
    assert moved.stats.reused_shifted > 0
    assert engine8k.kv_exact_tokens < moved.stats.prompt_tokens
    engine8k.reuse_mode = ReuseMode.EXACT
    again = engine8k.complete(at(DECODER, 203))
    assert_consistent(engine8k, again)
    assert again.stats.reused_shifted == 0
    # Nothing past the first moved block: the prefix, and a gap evaluated right after it.
    spans = moved.stats.fresh_spans
    first_block = spans[0][1] if spans[0][0] == moved.stats.reused_exact else moved.stats.reused_exact
    assert again.stats.reused_exact <= first_block < moved.stats.prompt_tokens // 2
    assert engine8k.kv_exact_tokens == len(engine8k.kv_tokens)


# ------------------------------------------------------------------------ snapshots
def test_snapshots_stay_within_their_budget(tiny_model: Path) -> None:
    engine = Engine()
    engine.load(tiny_model, EngineConfig(n_ctx=8192, n_threads=2, snapshot_budget=1_200_000))
    engine.complete(at(DECODER, 200))
    size = engine.save_snapshot("decoder.py")
    per_token = size / len(engine.kv_tokens)
    # 2 layers x (K + V) x 32 values x 2 bytes (f16) = 256 bytes, plus a little per cell.
    assert 256 <= per_token < 300, per_token
    engine.complete(at(ENCODER, 150, document="encoder.py"))
    engine.complete(at(DECODER, 200, document="third"))  # saves encoder.py: decoder.py must go
    assert engine.snapshot_documents == ("encoder.py",)
    assert 0 < engine.snapshot_bytes <= 1_200_000
    engine.drop_snapshot("encoder.py")
    assert engine.snapshot_bytes == 0
    engine.close()


# -------------------------------------------------------------------------- prefill
def test_prefill_then_complete_costs_one_token(engine8k: Engine) -> None:
    request = at(DECODER, 200)
    prefill = engine8k.prefill(request)
    assert not prefill.cancelled and prefill.stats.generated_tokens == 0
    assert prefill.stats.evaluated == prefill.stats.prompt_tokens == len(prefill.prompt.tokens) - 1
    result = engine8k.complete(request)
    assert result.stats.evaluated == 1 and result.stats.generated_tokens > 0
    assert_consistent(engine8k, result)


def test_a_user_request_stops_an_idle_prefill_within_300_ms(tiny_model: Path) -> None:
    engine = Engine()
    engine.load(tiny_model, EngineConfig(n_ctx=16384, n_threads=2))
    text = (DECODER + ENCODER) * 2
    request = CompletionRequest(text, "", max_tokens=8, document="big")
    n_prompt = len(engine.build_prompt(request).tokens)
    assert n_prompt > 10_000
    cancel = CancelToken()
    cancelled_at: list[float] = []

    def user_arrives() -> None:
        while not engine.kv_tokens:  # the first batch is done: the prefill is running
            time.sleep(0.001)
        cancelled_at.append(time.perf_counter())
        cancel.cancel()

    thread = threading.Thread(target=user_arrives)
    thread.start()
    result = engine.prefill(request, cancel)
    stopped = time.perf_counter()
    thread.join()
    assert result.cancelled
    assert stopped - cancelled_at[0] < 0.3
    kept = len(engine.kv_tokens)
    assert 0 < kept < n_prompt
    assert engine.kv_positions() == (0, kept - 1)
    # What the prefill evaluated serves the request that interrupted it.
    served = engine.complete(request)
    assert served.stats.reused_exact >= kept
    engine.close()
