"""A file just opened: the first token within a latency budget, the whole context later."""

from __future__ import annotations

import dataclasses
import sysconfig
from pathlib import Path

from app.core.engine import CompletionRequest, Engine, EngineConfig
from app.core.fim import FimPrompt, SegmentKind
from app.core.prompt_window import PromptWindow

SOURCE = (Path(sysconfig.get_paths()["stdlib"]) / "json" / "decoder.py").read_text(encoding="utf-8")
CARET = SOURCE.index("def py_scanstring")


def first_request(budget_ms: float | None) -> CompletionRequest:
    return CompletionRequest(prefix=SOURCE[:CARET], suffix=SOURCE[CARET:], max_tokens=4,
                             document="decoder.py", latency_budget_ms=budget_ms)


def text_of(engine: Engine, prompt: FimPrompt, kind: SegmentKind) -> str:
    tokens = [t for segment in prompt.segments if segment.kind is kind for t in segment.tokens]
    return b"".join(engine.token_bytes(t) for t in tokens).decode("utf-8")


def test_a_cold_prompt_is_narrowed_to_the_budget_then_the_whole_context_follows(tiny_model: Path) -> None:
    engine = Engine()
    engine.load(tiny_model, EngineConfig(n_ctx=8192, n_threads=2))
    try:
        full = engine.build_prompt(first_request(None))
        # A budget the measured prompt speed can only fill with a window around the caret.
        budget_ms = 1000 * 300 / engine.prompt_speed
        narrow = engine.complete(first_request(budget_ms))
        assert narrow.narrowed
        assert len(narrow.prompt.tokens) <= 300 < len(full.tokens)
        assert narrow.stats.evaluated == len(narrow.prompt.tokens)
        # What is kept is the text right at the caret, on both sides.
        prefix_text = text_of(engine, narrow.prompt, SegmentKind.PREFIX)
        suffix_text = text_of(engine, narrow.prompt, SegmentKind.SUFFIX)
        assert SOURCE[:CARET].endswith(prefix_text) and prefix_text
        assert SOURCE[CARET:].startswith(suffix_text) and suffix_text
        # Idle time: the whole prompt is prefilled; the next request within budget uses all of it.
        engine.prefill(first_request(None))
        again = engine.complete(first_request(budget_ms))
        assert not again.narrowed
        assert again.prompt.tokens == full.tokens
        assert again.stats.evaluated <= 2
    finally:
        engine.close()


def test_no_budget_or_a_cheap_prompt_is_never_narrowed(engine: Engine) -> None:
    request = first_request(None)
    assert not engine.complete(request).narrowed
    generous = dataclasses.replace(request, latency_budget_ms=60_000.0)
    result = engine.complete(generous)
    assert not result.narrowed and result.stats.evaluated <= 2


def request_at(text: str, caret: int, tokens: int | None, engine: Engine, **extra: object) -> CompletionRequest:
    """A request whose budget affords ``tokens`` at the engine's current prompt speed
    (measured as it goes: the budget is recomputed for each request)."""
    budget = None if tokens is None else 1000 * tokens / engine.prompt_speed
    return CompletionRequest(prefix=text[:caret], suffix=text[caret:], max_tokens=4, document="decoder.py",
                             latency_budget_ms=budget, **extra)  # type: ignore[arg-type]


def line_start(text: str, line: int) -> int:
    return sum(len(x) for x in text.splitlines(keepends=True)[:line])


def test_the_window_stays_put_while_the_caret_moves_and_types_inside_it(tiny_model: Path) -> None:
    engine = Engine()
    engine.load(tiny_model, EngineConfig(n_ctx=8192, n_threads=2))
    try:
        caret = line_start(SOURCE, 200) - 1  # the end of line 200
        first = engine.complete(request_at(SOURCE, caret, 160, engine))
        window = engine.window_of("decoder.py")
        assert first.narrowed and window is not None and not window.full
        head = SOURCE[window.head_cut : window.head_cut + 40]
        # A click one line up, inside the window: same edges, a few tokens evaluated.
        caret = line_start(SOURCE, 199) - 1
        click = engine.complete(request_at(SOURCE, caret, 160, engine))
        assert engine.window_of("decoder.py") == window
        assert text_of(engine, click.prompt, SegmentKind.PREFIX).startswith(head)
        assert click.stats.evaluated <= 16 < len(click.prompt.tokens)
        # Typing a line there: the edges stay on the same text, only the line is new.
        edited = SOURCE[:caret] + "\n        x = 1" + SOURCE[caret:]
        caret += len("\n        x = 1")
        typed = engine.complete(request_at(edited, caret, 160, engine))
        assert engine.window_of("decoder.py") == window
        assert text_of(engine, typed.prompt, SegmentKind.PREFIX).startswith(head)
        assert typed.stats.evaluated <= 16
        # A jump 100 lines up leaves the window: a new one around the caret, within budget.
        caret = line_start(edited, 100) - 1
        jump = engine.complete(request_at(edited, caret, 160, engine))
        moved = engine.window_of("decoder.py")
        assert moved is not None and moved != window
        assert moved.head_cut <= caret <= len(edited) - moved.tail_cut
        assert jump.narrowed and len(jump.prompt.tokens) <= 160
    finally:
        engine.close()


def test_idle_prefill_readies_the_window_first_and_grows_it_to_the_whole_prompt_later(tiny_model: Path) -> None:
    engine = Engine()
    engine.load(tiny_model, EngineConfig(n_ctx=8192, n_threads=2))
    try:
        full = engine.build_prompt(first_request(None))
        window_only = engine.prefill(request_at(SOURCE, CARET, 160, engine, prefill_widens=False))
        assert window_only.narrowed and not window_only.cancelled
        window = engine.window_of("decoder.py")
        assert window is not None and not window.full
        assert len(window_only.prompt.tokens) <= 160 and window_only.stats.evaluated > 0
        asked = engine.complete(request_at(SOURCE, CARET, 160, engine))
        assert asked.narrowed and asked.stats.evaluated <= 2  # the window was ready
        grown = engine.prefill(request_at(SOURCE, CARET, 160, engine))
        assert not grown.narrowed and grown.prompt.tokens == full.tokens
        assert engine.window_of("decoder.py") == PromptWindow(0, 0, full=True)
        whole = engine.complete(request_at(SOURCE, CARET, 160, engine))
        assert not whole.narrowed and whole.prompt.tokens == full.tokens
        assert whole.stats.evaluated <= 2
    finally:
        engine.close()
