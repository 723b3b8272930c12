"""HumanEval-Infilling scoring: data, statistics, selection, run folders, a real tiny model."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from app.core.engine import CancelToken, Engine
from app.core.evaluation.dataset import Problem, Selection, Subset, group_by_task, load_problems
from app.core.evaluation.runner import (
    ORACLE,
    EvalSettings,
    Progress,
    SamplesFileError,
    evaluate_completions,
    evaluate_models,
    oracle_samples,
    read_samples,
    subset_of,
)
from app.core.evaluation.sandbox import Execution, Sandbox
from app.core.evaluation.scoring import exact_match, wilson_interval
from app.core.evaluation.store import RunStore, SampleRecord, evaluations_dir
from app.core.model_info import FimTokenIds

SIZES = {Subset.SINGLE_LINE: 1033, Subset.MULTI_LINE: 5815, Subset.RANDOM_SPAN: 1640, Subset.RANDOM_SPAN_LIGHT: 164}


@pytest.mark.parametrize("subset", list(Subset))
def test_every_subset_loads_whole_from_the_vendored_files(subset: Subset) -> None:
    problems = load_problems(subset)
    assert len(problems) == SIZES[subset]
    assert len({p.task_id for p in problems}) == SIZES[subset]
    assert all(p.task_id.startswith(subset.task_prefix + "/HumanEval/") for p in problems)
    assert {subset_of(p.task_id) for p in problems} == {subset}
    assert len({p.task for p in problems}) == 164


def test_program_is_upstreams_concatenation() -> None:
    test = "def check(c):\n    assert c() == 1\n"
    problem = Problem("X/HumanEval/7/1", "def f():\n    return ", "\n", "1", test, "f")
    assert problem.program("1") == "def f():\n    return 1\n\ndef check(c):\n    assert c() == 1\n\ncheck(f)"
    assert problem.task == "HumanEval/7"


def test_wilson_interval_known_values() -> None:
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(164, 164)[0] == pytest.approx(0.9771, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_exact_match_ignores_whitespace_at_both_ends_only() -> None:
    assert exact_match("  return x\n", "return x")
    assert not exact_match("return  x", "return x")
    assert not exact_match("", "return x")


def test_selection_limit_sample_and_keys() -> None:
    problems = load_problems(Subset.SINGLE_LINE)
    assert [p.task_id for p in Selection(limit=5).apply(problems)] == [p.task_id for p in problems[:5]]
    drawn = Selection(sample=200, seed=1).apply(problems)
    assert len(drawn) == 200 and drawn == Selection(sample=200, seed=1).apply(problems)
    assert drawn != Selection(sample=200, seed=2).apply(problems)
    order = [problems.index(p) for p in drawn]
    assert order == sorted(order)  # file order: a task's problems stay together
    assert len(Selection(sample=5000).apply(problems)) == len(problems)
    assert len({Selection().key, Selection(limit=5).key, Selection(sample=5, seed=1).key,
                Selection(sample=5, seed=2).key}) == 4
    with pytest.raises(ValueError):
        Selection(limit=3, sample=3)
    with pytest.raises(ValueError):
        Selection(limit=0)


def test_group_by_task_keeps_a_tasks_problems_together() -> None:
    a1, b1, a2 = (Problem(f"S/HumanEval/{t}/{i}", "", "", "", "", "f") for t, i in ((1, 1), (2, 1), (1, 2)))
    assert group_by_task([a1, b1, a2]) == [a1, a2, b1]


def test_read_samples_and_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "s.jsonl"
    good.write_text('{"task_id": "a", "completion": "x"}\n\n{"task_id": "b", "completion": ""}\n')
    assert read_samples(good) == [("a", "x"), ("b", "")]
    bad = tmp_path / "bad.jsonl"
    for text, message in (("{nope\n", "line 1 is not JSON"), ('{"task_id": "a"}\n', "string task_id and completion"),
                          ("", "holds no samples")):
        bad.write_text(text)
        with pytest.raises(SamplesFileError, match=message):
            read_samples(bad)
    with pytest.raises(SamplesFileError, match="not found"):
        read_samples(tmp_path / "missing.jsonl")


def test_oracle_scores_every_light_problem() -> None:
    settings = EvalSettings(subset=Subset.RANDOM_SPAN_LIGHT, selection=Selection(limit=12))
    report = evaluate_completions(oracle_samples(settings), ORACLE, settings)
    score = report.scores[0]
    assert (score.passed, score.n, score.exact) == (12, 12, 12)
    assert [r.task_id for r in report.results] == [t for t, _ in oracle_samples(settings)]
    assert set(report.to_json()) == {"models", "results"}
    assert set(report.to_json()["results"][0]) == {"model", "task_id", "passed", "reason", "seconds"}


def test_a_wrong_completion_fails_with_the_exception_as_reason() -> None:
    problem = load_problems(Subset.SINGLE_LINE)[0]
    settings = EvalSettings(subset=Subset.SINGLE_LINE)
    report = evaluate_completions([(problem.task_id, "    return None\n")], "mine", settings)
    assert report.results[0].passed is False
    assert report.results[0].reason.startswith("failed: ")
    with pytest.raises(SamplesFileError, match="not in the single-line subset"):
        evaluate_completions([("nope", "x")], "mine", settings)


SMALL: dict[str, Any] = {"max_tokens": 8, "n_ctx": 1024, "threads": 2}


class _HeldAfterTwo(Sandbox):
    """The real sandbox, but programs after the second wait until the user has cancelled:
    with the tiny model all four completions are generated at once, and on a fast machine
    all four programs could finish before the cancel is seen, leaving nothing to cancel."""

    def __init__(self, cancel: CancelToken) -> None:
        super().__init__()
        self._cancel = cancel
        self._runs = 0
        self._lock = threading.Lock()

    def run(self, program: str) -> Execution:
        with self._lock:
            self._runs += 1
            held = self._runs > 2
        deadline = time.monotonic() + 30
        while held and not self._cancel.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        return super().run(program)


def test_tiny_model_runs_the_whole_pipeline_and_resumes_a_killed_run(tiny_model: Path, tmp_path: Path) -> None:
    settings = EvalSettings(subset=Subset.RANDOM_SPAN_LIGHT, selection=Selection(limit=4), **SMALL)
    out = tmp_path / "run"
    cancel = CancelToken()
    seen: list[Progress] = []

    def stop_after_two(progress: Progress) -> None:
        seen.append(progress)
        if progress.done >= 2:
            cancel.cancel()

    first = evaluate_models([tiny_model], settings, out=out, on_progress=stop_after_two, cancel=cancel,
                            sandbox=_HeldAfterTwo(cancel))
    assert first.cancelled and not first.scores[0].complete
    lines = (out / "results.jsonl").read_text().splitlines()
    assert 2 <= len(lines) < 4
    # A kill in the middle of a write leaves half a line: it is dropped, not fatal.
    with (out / "results.jsonl").open("a") as stream:
        stream.write('{"model": "x", "task_id": "Rand')
    second = evaluate_models([tiny_model], settings, out=out)
    score = second.scores[0]
    assert not second.cancelled and score.complete
    assert score.resumed == len(lines) and score.n == 4
    assert 0.0 <= score.pass_at_1 <= 0.25  # random weights: near zero
    assert score.ttft_ms_mean is not None and score.ttft_ms_mean > 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in records] == [p.task_id for p in Selection(limit=4).apply(
        load_problems(Subset.RANDOM_SPAN_LIGHT))]
    assert all(r["reason"] for r in records)
    assert seen[0].stage == "loading"


def test_default_run_folder_is_named_by_model_subset_selection_and_parameters(tiny_model: Path) -> None:
    base = EvalSettings(subset=Subset.RANDOM_SPAN_LIGHT, selection=Selection(limit=1), **SMALL)
    one = evaluate_models([tiny_model], base).scores[0].run_folder
    again = evaluate_models([tiny_model], base).scores[0]
    other = evaluate_models([tiny_model], EvalSettings(subset=Subset.RANDOM_SPAN_LIGHT, selection=Selection(limit=1),
                                                       max_tokens=9, n_ctx=1024, threads=2)).scores[0].run_folder
    assert one is not None and other is not None
    assert Path(one).parent == evaluations_dir()
    assert again.run_folder == one and again.resumed == 1  # same run: nothing generated twice
    assert other != one and "random-span-light-first1" in Path(one).name


def test_a_model_without_fim_tokens_gets_the_prefix_and_the_report_says_so(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Engine, "_fim_ids_from_vocab", lambda self, info: FimTokenIds())
    settings = EvalSettings(subset=Subset.RANDOM_SPAN_LIGHT, selection=Selection(limit=1), **SMALL)
    report = evaluate_models([tiny_model], settings, out=tmp_path / "p")
    assert report.scores[0].prefix_only
    assert any("prefix-only" in note for note in report.notes)
    assert "(prefix only)" in report.to_markdown()


def test_run_store_moves_another_runs_results_aside(tmp_path: Path) -> None:
    record = SampleRecord("m", "t1", True, "passed", 0.1, "x", True)
    first = RunStore(tmp_path, {"a": 1})
    assert first.open() == {}
    first.append(record)
    assert set(RunStore(tmp_path, {"a": 1}).open()) == {"t1"}
    assert RunStore(tmp_path, {"a": 2}).open() == {}
    assert len(list(tmp_path.glob("results-*.jsonl"))) == 1
