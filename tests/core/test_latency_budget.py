"""A file just opened: the first token within a latency budget, the whole context later."""

from __future__ import annotations

import dataclasses
import sysconfig
from pathlib import Path

from app.core.engine import CompletionRequest, Engine, EngineConfig
from app.core.fim import FimPrompt, SegmentKind

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
