"""Side-by-side quant comparison: one prompt, several quants, measured one at a time.

Quants never compute at the same time: two llama.cpp contexts generating at once on
2 cores dropped one of them to 0.31 tok/s from 8. So each model is loaded, warmed up
(weights touched, threads started, then the KV cache cleared so every quant starts
cold), run greedily on the same prompt with the same threads, scored, and closed
before the next. The highest-precision quant runs first and is the reference:

* agreement: each quant is teacher-forced along the reference's completion and we
  count how often its own top-1 token equals the reference's next token;
* perplexity: exp(mean negative log-likelihood) of a buffer under each quant.

Both come from logits in the engine, not from comparing generated strings.

A model may also be a server's (``ServerProfile`` with its model): it is connected instead of
loaded and compared on speed and text; agreement and perplexity need logits, which a
server does not hand out, so they stay empty for it. Local files go first (they are the
reference when there is one), then the servers in the order given.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psutil

from app.core.engine import CancelToken, CompletionRequest, Engine, EngineConfig
from app.core.engine_api import CompletionEngine, ScoringEngine
from app.core.errors import CancelledError
from app.core.fim import Layout
from app.core.memory_fit import gpu_layers_for
from app.core.model_info import ModelInfo, model_info
from app.core.remote.base import RemoteEngineBase
from app.core.remote.profile import ServerProfile

log = logging.getLogger("starpad.compare")

MAX_MODELS = 4
StageCallback = Callable[[int, str, str], None]  # (model index, model name, stage)


@dataclass(frozen=True)
class CompareSettings:
    max_tokens: int = 32
    n_ctx: int = 4096
    threads: int | None = None
    layout: Layout = Layout.SPM
    perplexity_tokens: int = 512
    #: The GPU-layers choice (app.core.offload: AUTO, ALL or a count), resolved per quant.
    n_gpu_layers: int = 0


@dataclass
class QuantResult:
    model: str
    name: str
    quant: str
    file_bytes: int
    load_s: float = 0.0
    peak_rss_bytes: int = 0
    ttft_ms: float = 0.0
    prompt_tps: float = 0.0
    gen_tps: float = 0.0
    text: str = ""
    tokens: list[int] = field(default_factory=list)
    agreement: float | None = None
    perplexity: float | None = None

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data.pop("tokens")
        for key in ("load_s", "ttft_ms", "prompt_tps", "gen_tps", "agreement", "perplexity"):
            if isinstance(data[key], float):
                data[key] = round(data[key], 4)
        return data


@dataclass
class ComparisonReport:
    reference: str
    results: list[QuantResult]
    prompt_tokens: int
    max_tokens: int
    threads: int

    def to_json(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "prompt_tokens": self.prompt_tokens,
            "max_tokens": self.max_tokens,
            "threads": self.threads,
            "results": [r.to_json() for r in self.results],
        }

    def to_markdown(self) -> str:
        from app.core.units import format_bytes

        lines = [
            f"Prompt: {self.prompt_tokens} tokens, greedy, {self.max_tokens} new tokens max, "
            f"{self.threads} threads. Reference: {Path(self.reference).name}.",
            "",
            "| Quant | File | Load | Peak RSS | First token | Prompt tok/s | Gen tok/s | Agreement | Perplexity |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.results:
            agreement = f"{r.agreement:.1%}" if r.agreement is not None else "—"
            perplexity = f"{r.perplexity:.2f}" if r.perplexity is not None else "—"
            lines.append(
                f"| {r.quant} | {format_bytes(r.file_bytes)} | {r.load_s:.2f} s | {format_bytes(r.peak_rss_bytes)} | "
                f"{r.ttft_ms:.0f} ms | {r.prompt_tps:.1f} | {r.gen_tps:.1f} | {agreement} | {perplexity} |"
            )
        lines.append("")
        for r in self.results:
            lines += [f"**{r.quant}** ({Path(r.model).name}):", "", "```", r.text, "```", ""]
        return "\n".join(lines)

    def write(self, directory: Path, stem: str = "comparison") -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        md, js = directory / f"{stem}.md", directory / f"{stem}.json"
        md.write_text(self.to_markdown(), encoding="utf-8")
        js.write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")
        return md, js


def precision_rank(info: ModelInfo) -> float:
    """Bits per weight measured from the file: one scale for every quant type
    (F16 16, Q8_0 8.5, Q4_1 5.0, Q4_0 4.5, Q2_K ~3), including ones no list names."""
    return info.size_bytes * 8 / max(1, info.n_params)


def compare_models(
    models: Sequence[Path | ServerProfile],
    prefix: str,
    suffix: str,
    settings: CompareSettings = CompareSettings(),
    buffer_text: str | None = None,
    on_stage: StageCallback | None = None,
    cancel: CancelToken | None = None,
) -> ComparisonReport:
    """Run the comparison; raises CancelledError when cancelled, ModelFileError for bad files,
    a RemoteError for a server that cannot be used."""
    if not 2 <= len(models) <= MAX_MODELS:
        raise ValueError(f"compare 2 to {MAX_MODELS} models, not {len(models)}")
    # Validate every file before spending minutes on the first.
    infos = [None if isinstance(m, ServerProfile) else model_info(m) for m in models]
    order = sorted(range(len(models)), key=lambda i: _order_key(infos[i], i))
    keys = [_model_key(m) for m in models]
    process = psutil.Process()
    config = EngineConfig(n_ctx=settings.n_ctx, n_threads=settings.threads)
    request = CompletionRequest(prefix, suffix, settings.layout, max_tokens=settings.max_tokens)
    perplexity_text = buffer_text if buffer_text is not None else prefix + suffix
    by_index: dict[int, QuantResult] = {}
    reference: QuantResult | None = None
    reference_prompt: list[int] = []
    reference_vocab: tuple[str, ...] = ()

    def stage(index: int, label: str, text: str) -> None:
        if cancel is not None and cancel.cancelled:
            raise CancelledError("comparison cancelled")
        if on_stage is not None:
            on_stage(index, label, text)

    for position, index in enumerate(order):
        info, model = infos[index], models[index]
        if info is not None:
            result = QuantResult(keys[index], info.name, info.file_type, info.size_bytes)
            label = f"{info.file_type} ({info.path.name})"
        else:
            assert isinstance(model, ServerProfile)
            result = QuantResult(keys[index], model.model or model.name, "server", 0)
            label = keys[index]
        engine: CompletionEngine | None = None
        try:
            stage(position, label, "loading" if info is not None else "connecting")
            started = time.perf_counter()
            engine = _open(model, config, cancel, settings.n_gpu_layers)
            result.load_s = time.perf_counter() - started
            if isinstance(engine, RemoteEngineBase):  # the server names its model now
                remote = engine.describe()
                result.model, result.name = f"{remote.model} @ {remote.host}", remote.model
            scorer: ScoringEngine | None = engine if isinstance(engine, Engine) else None
            peak = process.memory_info().rss
            stage(position, label, "warming up")
            engine.complete(CompletionRequest("def warm_up():\n    ", max_tokens=4))
            engine.reset_cache()
            stage(position, label, "completing")
            completion = engine.complete(request, cancel=cancel)
            if completion.stop_reason == "cancelled":
                raise CancelledError("comparison cancelled")
            peak = max(peak, process.memory_info().rss)
            result.text, result.tokens = completion.text, list(completion.tokens)
            result.ttft_ms, result.prompt_tps, result.gen_tps = (
                completion.stats.ttft_ms, completion.stats.prompt_tps, completion.stats.gen_tps
            )
            prompt = completion.prompt.tokens
            vocab = _vocab_fingerprint(scorer) if scorer is not None else ()
            if reference is None:
                reference, reference_prompt, reference_vocab = result, prompt, vocab
            if scorer is not None:
                stage(position, label, "scoring")
                if vocab == reference_vocab and reference.tokens:
                    scores = scorer.score(reference_prompt, reference.tokens, cancel)
                    result.agreement = sum(s.argmax == s.target for s in scores) / len(scores)
                result.perplexity = _perplexity(scorer, perplexity_text, settings.perplexity_tokens, cancel)
            # A server's memory is not this process's.
            result.peak_rss_bytes = max(peak, process.memory_info().rss) if scorer is not None else 0
        finally:
            if engine is not None:
                engine.close()
        by_index[index] = result
    assert reference is not None
    # Present in the caller's order.
    ordered = [by_index[i] for i in range(len(models))]
    return ComparisonReport(reference.model, ordered, len(reference_prompt), settings.max_tokens, config.threads)


def _order_key(info: ModelInfo | None, index: int) -> tuple[int, float, int]:
    """Local files by precision (the reference first), then servers as given."""
    return (0, -precision_rank(info), index) if info is not None else (1, 0.0, index)


def _model_key(model: Path | ServerProfile) -> str:
    if isinstance(model, ServerProfile):
        return f"{model.model or 'default model'} @ {model.host}"
    return str(model)


def _open(model: Path | ServerProfile, config: EngineConfig, cancel: CancelToken | None,
          gpu_layers: int = 0) -> CompletionEngine:
    if isinstance(model, ServerProfile):
        from app.core.remote.factory import connect

        return connect(model, cancel)
    engine = Engine()
    engine.load(model, replace(config, n_gpu_layers=gpu_layers_for(gpu_layers, model, config.n_ctx)))
    return engine


def _vocab_fingerprint(engine: ScoringEngine) -> tuple[str, ...]:
    """Agreement is only defined between quants that share a tokenizer."""
    return tuple(engine.token_text(t) for t in range(0, 4096, 97))


def _perplexity(engine: ScoringEngine, text: str, max_tokens: int, cancel: CancelToken | None) -> float | None:
    tokens = engine.tokenize(text)[: min(max_tokens, engine.n_ctx - 1)]
    if len(tokens) < 2:
        return None
    engine.reset_cache()
    scores = engine.score([], tokens, cancel)
    nll = -sum(s.logprob for s in scores) / len(scores)
    return math.exp(nll)
