"""Score quants on HumanEval-Infilling: generate with the engine, run in the sandbox.

Quants run one after another with a single engine in memory, each started cold (loaded,
warmed up, cache cleared), as the speed comparison does. Within a model the problems of
one task run back to back, so the KV cache keeps their shared code. Generation is greedy
with the model's FIM tokens in PSM order (``<fim_prefix>`` prompt ``<fim_suffix>`` suffix
``<fim_middle>``, the order upstream's harness and the BigCode evaluation use); a model
without FIM tokens sees only the prompt. While the next completion is generated, the
previous program runs in the sandbox on another core.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.core.engine import CancelToken, CompletionRequest, CompletionResult, Engine, EngineConfig, SamplingParams
from app.core.engine_api import CompletionEngine
from app.core.errors import StarpadError
from app.core.evaluation.dataset import Problem, Selection, Subset, group_by_task, load_problems
from app.core.evaluation.sandbox import Execution, Sandbox, SandboxConfig
from app.core.evaluation.scoring import exact_match, wilson_interval
from app.core.evaluation.store import RunStore, SampleRecord, evaluations_dir, file_fingerprint, params_digest
from app.core.fim import Layout
from app.core.model_info import model_info
from app.core.remote.profile import ServerProfile

log = logging.getLogger("starpad.evaluation")

DEFAULT_MAX_TOKENS = 128
ORACLE = "canonical solutions"


class SamplesFileError(StarpadError):
    """A ``--samples`` file that is not JSON lines of ``task_id`` and ``completion``."""


@dataclass(frozen=True)
class EvalSettings:
    subset: Subset = Subset.RANDOM_SPAN_LIGHT
    selection: Selection = field(default_factory=Selection)
    max_tokens: int = DEFAULT_MAX_TOKENS
    n_ctx: int = 4096
    threads: int | None = None
    layout: Layout = Layout.PSM
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    #: The GPU-layers choice (app.core.offload: AUTO, ALL or a count), resolved per quant.
    #: Not a run parameter: where the layers run does not change greedy results by design.
    n_gpu_layers: int = 0

    def run_params(self) -> dict[str, Any]:
        """What decides the results (not where they go): a change starts a new run."""
        return {"subset": self.subset.value, "selection": self.selection.key, "max_tokens": self.max_tokens,
                "n_ctx": self.n_ctx, "layout": self.layout.value, "timeout_s": self.sandbox.timeout_s,
                "memory_bytes": self.sandbox.memory_bytes}


@dataclass(frozen=True)
class Progress:
    model_index: int
    model_count: int
    model: str
    done: int  # samples of this model finished (resumed ones included)
    total: int
    passed: int
    eta_s: float | None  # for this model
    stage: str = "running"


ProgressCallback = Callable[[Progress], None]


@dataclass
class ModelScore:
    model: str  # the file path, or what the completions came from
    label: str  # what a table shows: the quant (``Q4_0``) or a file name
    file_bytes: int | None
    passed: int = 0
    n: int = 0
    exact: int = 0
    ttft_ms_mean: float | None = None
    gen_tps_mean: float | None = None
    prefix_only: bool = False
    seconds: float = 0.0  # wall time of this attempt, loading included
    resumed: int = 0  # samples taken over from an earlier attempt
    run_folder: str | None = None
    complete: bool = True

    @property
    def pass_at_1(self) -> float:
        return self.passed / self.n if self.n else 0.0

    @property
    def ci(self) -> tuple[float, float]:
        return wilson_interval(self.passed, self.n)

    @property
    def exact_match(self) -> float:
        return self.exact / self.n if self.n else 0.0

    def to_json(self) -> dict[str, Any]:
        """The keys ``eval --json`` promises, and the run's wall time."""
        low, high = self.ci
        return {
            "model": self.model,
            "pass_at_1": round(self.pass_at_1, 6),
            "ci_low": round(low, 6),
            "ci_high": round(high, 6),
            "exact_match": round(self.exact_match, 6),
            "n": self.n,
            "ttft_ms_mean": None if self.ttft_ms_mean is None else round(self.ttft_ms_mean, 3),
            "gen_tps_mean": None if self.gen_tps_mean is None else round(self.gen_tps_mean, 3),
            "seconds": round(self.seconds, 1),  # wall time of this model's run, loading included
        }


@dataclass
class EvaluationReport:
    subset: Subset
    selection: str  # in words
    settings: EvalSettings
    scores: list[ModelScore] = field(default_factory=list)
    results: list[SampleRecord] = field(default_factory=list)
    problems: dict[str, Problem] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cancelled: bool = False
    generated: bool = True  # False: given completions (--samples, --oracle)

    def to_json(self) -> dict[str, Any]:
        """``models`` and ``results``, the keys ``eval --json`` promises and nothing else."""
        return {
            "models": [s.to_json() for s in self.scores],
            "results": [
                {"model": r.model, "task_id": r.task_id, "passed": r.passed, "reason": r.reason,
                 "seconds": round(r.seconds, 4)}
                for r in self.results
            ],
        }

    def failures(self, model: str) -> list[tuple[SampleRecord, Problem]]:
        return [(r, self.problems[r.task_id]) for r in self.results
                if r.model == model and not r.passed and r.task_id in self.problems]

    def to_markdown(self) -> str:
        how = f"greedy, at most {self.settings.max_tokens} new tokens; " if self.generated else ""
        lines = [
            f"HumanEval-Infilling **{self.subset.value}**, {self.selection}; {how}each program in the sandbox "
            f"with a {self.settings.sandbox.timeout_s:g} s timeout.",
            "",
            "| Model | pass@1 | 95 % interval | Exact match | n | First token | Gen tok/s | Time |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in self.scores:
            low, high = s.ci
            ttft = f"{s.ttft_ms_mean:,.0f} ms" if s.ttft_ms_mean is not None else "—"
            tps = f"{s.gen_tps_mean:,.1f}" if s.gen_tps_mean is not None else "—"
            label = s.label + (" (prefix only)" if s.prefix_only else "") + ("" if s.complete else " (unfinished)")
            lines.append(f"| {label} | {s.pass_at_1:.1%} | {low:.1%}–{high:.1%} | {s.exact_match:.1%} | {s.n} | "
                         f"{ttft} | {tps} | {s.seconds:,.0f} s |")
        if self.notes:
            lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines)


# ------------------------------------------------------------------ running
def evaluate_models(
    models: Sequence[Path | ServerProfile],
    settings: EvalSettings = EvalSettings(),
    *,
    sandbox: Sandbox | None = None,
    out: Path | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> EvaluationReport:
    """Score each model in turn; results go to a run folder per model as they come.

    ``out`` is the run folder for a single model, the parent of one folder per model for
    several. A cancel stops after the program running now; the report then says so and
    running again resumes.
    """
    infos = [None if isinstance(m, ServerProfile) else model_info(m) for m in models]  # files checked first
    problems = group_by_task(settings.selection.apply(load_problems(settings.subset)))
    sandbox = sandbox or Sandbox(settings.sandbox)
    sandbox.check()
    report = _new_report(settings, problems, sandbox)
    file_types = [i.file_type for i in infos if i is not None]
    for index, (model, info) in enumerate(zip(models, infos, strict=True)):
        if cancel is not None and cancel.cancelled:
            report.cancelled = True
            break
        if isinstance(model, ServerProfile):
            key = label = f"{model.model or 'default model'} @ {model.host}"
            fingerprint = hashlib.sha256(f"{model.kind.value} {model.url} {model.model}".encode()).hexdigest()[:16]
        else:
            assert info is not None
            key = str(model)
            label = info.file_type if len(set(file_types)) == len(infos) else model.name
            fingerprint = file_fingerprint(Path(model))
        params = {**settings.run_params(), "model": key, "fingerprint": fingerprint}
        if out is None:
            folder = evaluations_dir() / _run_name(params)
        else:
            folder = out if len(models) == 1 else out / _run_name(params)
        score = ModelScore(key, label, info.size_bytes if info else 0, prefix_only=bool(info and info.prefix_only),
                           run_folder=str(folder))
        store = RunStore(folder, params)
        done = store.open()
        _run_model(model, problems, done, store, score, report, sandbox, settings, index, len(models),
                   on_progress, cancel)
        if score.prefix_only:
            report.notes.append(f"{Path(key).name} has no FIM tokens: it saw only the code before the gap, never "
                                f"the code after it (prefix-only), so its score is not comparable to a FIM model's")
        report.scores.append(score)
        if not score.complete:
            report.cancelled = True
            break
    return report


def _run_name(params: Mapping[str, Any]) -> str:
    return f"{params['fingerprint']}-{params['subset']}-{params['selection']}-{params_digest(params)}"


def _new_report(settings: EvalSettings, problems: list[Problem], sandbox: Sandbox) -> EvaluationReport:
    total = len(load_problems(settings.subset))
    report = EvaluationReport(settings.subset, settings.selection.describe(total), settings,
                              problems={p.task_id: p for p in problems})
    missing = sandbox.describe_missing()
    if missing:
        report.notes.append(missing)
    return report


def _run_model(
    model: Path | ServerProfile,
    problems: list[Problem],
    done: dict[str, SampleRecord],
    store: RunStore,
    score: ModelScore,
    report: EvaluationReport,
    sandbox: Sandbox,
    settings: EvalSettings,
    index: int,
    count: int,
    on_progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> None:
    started = time.perf_counter()
    records: list[SampleRecord] = [done[p.task_id] for p in problems if p.task_id in done]
    score.resumed = len(records)
    todo = [p for p in problems if p.task_id not in done]
    tracker = _Tracker(index, count, score.model, len(problems), records, on_progress)
    tracker.emit("loading")
    engine: CompletionEngine | None = None
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="starpad-eval-run")
    pending: list[concurrent.futures.Future[SampleRecord]] = []
    try:
        if todo:
            engine = _open_engine(model, settings, cancel)
            score.prefix_only = not engine.fim_tokens.can_fill_middle  # the engine's view decides the prompt
            engine.complete(CompletionRequest("def warm_up():\n    ", max_tokens=4))
            engine.reset_cache()  # every quant starts cold
        for problem in todo:
            if cancel is not None and cancel.cancelled:
                score.complete = False
                break
            assert engine is not None
            completion = engine.complete(_request(problem, settings), cancel=cancel)
            if completion.stop_reason == "cancelled":
                score.complete = False
                break
            pending.append(pool.submit(_execute, sandbox, problem, completion, score.model))
            pending = tracker.harvest(pending, store, block=False, cancel=cancel)
        tracker.harvest(pending, store, block=True, cancel=cancel)
        if len(tracker.records) < len(problems):
            score.complete = False  # cancelled while programs were still queued
    finally:
        pool.shutdown(wait=True)
        if engine is not None:
            engine.close()
    _summarise(score, tracker.records, time.perf_counter() - started)
    report.results += tracker.records


def _open_engine(model: Path | ServerProfile, settings: EvalSettings, cancel: CancelToken | None) -> CompletionEngine:
    """Load the file, or connect to the server (a profile naming its model)."""
    if isinstance(model, ServerProfile):
        from app.core.remote.factory import connect

        return connect(model, cancel)
    engine = Engine()
    from app.core.memory_fit import gpu_layers_for

    engine.load(model, EngineConfig(n_ctx=settings.n_ctx, n_threads=settings.threads,
                                    n_gpu_layers=gpu_layers_for(settings.n_gpu_layers, model, settings.n_ctx)))
    return engine


def _request(problem: Problem, settings: EvalSettings) -> CompletionRequest:
    return CompletionRequest(
        prefix=problem.prompt,
        suffix=problem.suffix,
        layout=settings.layout,
        max_tokens=settings.max_tokens,
        single_line=settings.subset.single_line,
        sampling=SamplingParams(temperature=0.0),
    )


def _execute(sandbox: Sandbox, problem: Problem, completion: CompletionResult, model: str) -> SampleRecord:
    run = sandbox.run(problem.program(completion.text))
    stats = completion.stats
    return SampleRecord(
        model=model, task_id=problem.task_id, passed=run.passed, reason=run.reason, seconds=run.seconds,
        completion=completion.text, exact_match=exact_match(completion.text, problem.canonical_solution),
        stop_reason=completion.stop_reason, ttft_ms=stats.ttft_ms,
        gen_tps=stats.gen_tps if stats.generated_tokens >= 2 else None,
        generated_tokens=stats.generated_tokens,
    )


class _Tracker:
    """Collects finished samples in order, appends them to the store, reports progress."""

    def __init__(self, index: int, count: int, model: str, total: int, records: list[SampleRecord],
                 on_progress: ProgressCallback | None) -> None:
        self.index, self.count, self.model, self.total = index, count, model, total
        self.records = records
        self._resumed = len(records)
        self._started = time.perf_counter()
        self._on_progress = on_progress

    def harvest(self, pending: list[concurrent.futures.Future[SampleRecord]], store: RunStore | None,
                block: bool, cancel: CancelToken | None = None) -> list[concurrent.futures.Future[SampleRecord]]:
        """Record finished programs in problem order (the run folder stays in order for a
        resume); with ``block``, wait for all. A cancel stops after the program running
        now: the ones not started are dropped."""
        still = list(pending)
        while still:
            if cancel is not None and cancel.cancelled:
                for future in still:
                    future.cancel()  # only those not started yet
                still = [f for f in still if not f.cancelled()]
                if not still:
                    break
            future = still[0]
            if not block and not future.done():
                break
            still.pop(0)
            record = future.result()
            if store is not None:
                store.append(record)
            self.records.append(record)
            self.emit("running")
        return still

    def emit(self, stage: str) -> None:
        if self._on_progress is None:
            return
        new = len(self.records) - self._resumed
        elapsed = time.perf_counter() - self._started
        left = self.total - len(self.records)
        eta = elapsed / new * left if new else None
        passed = sum(r.passed for r in self.records)
        self._on_progress(Progress(self.index, self.count, self.model, len(self.records), self.total, passed, eta,
                                   stage))


def _summarise(score: ModelScore, records: list[SampleRecord], seconds: float) -> None:
    score.n = len(records)
    score.passed = sum(r.passed for r in records)
    score.exact = sum(r.exact_match for r in records)
    ttfts = [r.ttft_ms for r in records if r.ttft_ms is not None]
    speeds = [r.gen_tps for r in records if r.gen_tps is not None]
    score.ttft_ms_mean = sum(ttfts) / len(ttfts) if ttfts else None
    score.gen_tps_mean = sum(speeds) / len(speeds) if speeds else None
    score.seconds = seconds


# ------------------------------------------------------- given completions
def read_samples(path: Path) -> list[tuple[str, str]]:
    """``(task_id, completion)`` per line of an ``evaluate_functional_correctness`` file."""
    samples: list[tuple[str, str]] = []
    try:
        with path.open(encoding="utf-8") as stream:
            for number, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except ValueError:
                    raise SamplesFileError(f"{path.name} line {number} is not JSON") from None
                if not isinstance(data, dict) or not isinstance(data.get("task_id"), str) \
                        or not isinstance(data.get("completion"), str):
                    raise SamplesFileError(f"{path.name} line {number} needs a string task_id and completion")
                samples.append((data["task_id"], data["completion"]))
    except FileNotFoundError:
        raise SamplesFileError(f"samples file not found: {path}") from None
    except UnicodeDecodeError:
        raise SamplesFileError(f"samples file is not UTF-8 text: {path}") from None
    except IsADirectoryError:
        raise SamplesFileError(f"{path} is a folder, not a samples file") from None
    except OSError as exc:
        raise SamplesFileError(f"cannot read samples file {path}: {exc.strerror}") from None
    if not samples:
        raise SamplesFileError(f"{path.name} holds no samples")
    return samples


def subset_of(task_id: str) -> Subset | None:
    """The subset a task id belongs to (``SingleLineInfilling/HumanEval/0/L0``)."""
    head = task_id.split("/", 1)[0]
    return next((subset for subset in Subset if subset.task_prefix == head), None)


def evaluate_completions(
    samples: Iterable[tuple[str, str]],
    label: str,
    settings: EvalSettings = EvalSettings(),
    *,
    sandbox: Sandbox | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> EvaluationReport:
    """Run given completions (``--samples``, ``--oracle``) without any model, in parallel."""
    all_problems = {p.task_id: p for p in load_problems(settings.subset)}
    items = list(samples)
    for task_id, _ in items:
        if task_id not in all_problems:
            raise SamplesFileError(f"task {task_id!r} is not in the {settings.subset.value} subset")
    sandbox = sandbox or Sandbox(settings.sandbox)
    sandbox.check()
    used = [all_problems[t] for t in dict.fromkeys(t for t, _ in items)]
    report = _new_report(settings, used, sandbox)
    report.selection = f"{len(items):,} given completions" if label != ORACLE else report.selection
    report.generated = False
    score = ModelScore(label, label, None)
    started = time.perf_counter()
    tracker = _Tracker(0, 1, label, len(items), [], on_progress)
    with concurrent.futures.ThreadPoolExecutor(max_workers=sandbox.config.workers,
                                               thread_name_prefix="starpad-eval-exec") as pool:
        pending: list[concurrent.futures.Future[SampleRecord]] = []
        for task_id, completion in items:
            if cancel is not None and cancel.cancelled:
                score.complete = False
                break
            problem = all_problems[task_id]
            pending.append(pool.submit(_execute_given, sandbox, problem, completion, label))
            # Keep a short queue: a cancel then waits for a few programs, not thousands.
            while len(pending) >= 2 * sandbox.config.workers:
                concurrent.futures.wait(pending[:1])
                pending = _harvest_in_order(tracker, pending)
        concurrent.futures.wait(pending)
        _harvest_in_order(tracker, pending)
    _summarise(score, tracker.records, time.perf_counter() - started)
    report.scores.append(score)
    report.results = tracker.records
    report.cancelled = not score.complete
    return report


def _harvest_in_order(tracker: _Tracker, pending: list[concurrent.futures.Future[SampleRecord]]
                      ) -> list[concurrent.futures.Future[SampleRecord]]:
    """Finished futures from the front, so results keep the samples' order."""
    while pending and pending[0].done():
        tracker.harvest(pending[:1], None, block=True)
        pending = pending[1:]
    return pending


def _execute_given(sandbox: Sandbox, problem: Problem, completion: str, label: str) -> SampleRecord:
    run: Execution = sandbox.run(problem.program(completion))
    return SampleRecord(model=label, task_id=problem.task_id, passed=run.passed, reason=run.reason,
                        seconds=run.seconds, completion=completion,
                        exact_match=exact_match(completion, problem.canonical_solution))


def oracle_samples(settings: EvalSettings) -> list[tuple[str, str]]:
    """The canonical solutions of the selected problems: a harness check (must be 100 %)."""
    problems = group_by_task(settings.selection.apply(load_problems(settings.subset)))
    return [(p.task_id, p.canonical_solution) for p in problems]


def with_subset(settings: EvalSettings, subset: Subset) -> EvalSettings:
    return replace(settings, subset=subset)
