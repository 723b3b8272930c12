"""``main.py eval`` as a script uses it: real processes, the real sandbox, the tiny model."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import EVAL_SUBSETS
from app.core.evaluation.dataset import Subset, load_problems

ROOT = Path(__file__).resolve().parents[1]
MODEL_KEYS = {"model", "pass_at_1", "ci_low", "ci_high", "exact_match", "n", "ttft_ms_mean", "gen_tps_mean",
              "seconds"}
RESULT_KEYS = {"model", "task_id", "passed", "reason", "seconds"}


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "eval", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture()
def outside() -> Iterator[Path]:
    """A folder visible inside the sandbox (not under /tmp, which bwrap replaces)."""
    base = Path("/var/tmp") if Path("/var/tmp").is_dir() else Path(tempfile.gettempdir())
    folder = Path(tempfile.mkdtemp(prefix="starpad-canary-", dir=base))
    folder.chmod(0o755)
    (folder / "canary.txt").write_text("still here")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_subset_choices_match_the_data() -> None:
    assert EVAL_SUBSETS == tuple(s.value for s in Subset)


def test_oracle_scores_100_percent_on_the_light_subset() -> None:
    proc = run("--oracle", "--subset", "random-span-light", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"models", "results"}
    (model,) = data["models"]
    assert set(model) == MODEL_KEYS
    assert model["pass_at_1"] == 1.0 and model["n"] == 164 and model["exact_match"] == 1.0
    assert model["ci_low"] == pytest.approx(0.9771, abs=1e-4) and model["ci_high"] == 1.0
    assert len(data["results"]) == 164 and all(set(r) == RESULT_KEYS and r["passed"] for r in data["results"])


def test_hostile_samples_each_fail_with_a_reason_and_the_run_goes_on(tmp_path: Path, outside: Path) -> None:
    problem = load_problems(Subset.SINGLE_LINE)[0]
    canary = outside / "canary.txt"
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        payloads = {
            "loop": "while True:\n    pass",
            "fork": "import os\nwhile True:\n    os.fork()",
            "memory": "x = bytearray(10 * 1024 ** 3)",
            "stdout": "import sys\nb = b'x' * 2 ** 20\nfor _ in range(1024):\n    sys.stdout.buffer.write(b)",
            "delete": f"import os\nos.remove({str(canary)!r})",
            "socket": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)",
            "ssh": "import os\nprint(os.listdir(os.path.expanduser('~/.ssh')))\nprint(os.listdir('/root/.ssh'))",
        }
        lines = [{"task_id": problem.task_id, "completion": f"    exec({src!r})\n{problem.canonical_solution}"}
                 for src in payloads.values()]
        lines.append({"task_id": problem.task_id, "completion": problem.canonical_solution})  # still runs, passes
        samples = tmp_path / "samples.jsonl"
        samples.write_text("".join(json.dumps(line) + "\n" for line in lines))
        proc = run("--samples", str(samples), "--timeout", "1.5", "--json")
        server.settimeout(0)
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    reasons = dict(zip(payloads, (r["reason"] for r in results), strict=False))
    assert [r["passed"] for r in results] == [False] * len(payloads) + [True]
    assert reasons["loop"] == "timed out after 1.5 s"
    assert reasons["fork"] == "timed out after 1.5 s" or "BlockingIOError" in reasons["fork"]
    assert reasons["memory"].startswith("memory limit")
    assert reasons["stdout"].startswith("output limit")
    assert "Read-only file system" in reasons["delete"]
    assert "ConnectionRefusedError" in reasons["socket"]
    assert "FileNotFoundError" in reasons["ssh"]
    assert canary.read_text() == "still here"
    assert json.loads(proc.stdout)["models"][0]["model"] == "samples.jsonl"


def test_without_bwrap_the_cli_says_which_protections_are_missing() -> None:
    proc = run("--oracle", "--limit", "2", "--no-bwrap")
    assert proc.returncode == 0, proc.stderr
    assert "run WITHOUT: read-only filesystem, no network, own PID namespace" in proc.stderr
    assert "| canonical solutions | 100.0% |" in proc.stdout


def test_tiny_model_through_the_whole_pipeline_scores_near_zero(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run("--models", str(tiny_model), "--subset", "single-line", "--limit", "3", "--max-tokens", "8",
               "--n-ctx", "1024", "--threads", "2", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    (model,) = data["models"]
    assert set(model) == MODEL_KEYS and model["model"] == str(tiny_model) and model["n"] == 3
    assert model["pass_at_1"] <= 1 / 3  # random weights: near zero
    assert model["ttft_ms_mean"] > 0
    assert [set(r) for r in data["results"]] == [RESULT_KEYS] * 3
    assert "3/3" in proc.stderr  # the progress line
    stored = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in stored] == [r["task_id"] for r in data["results"]]
    assert all(r["stop_reason"] for r in stored)


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [sys.executable, str(ROOT / "main.py"), "eval", "--models", str(tiny_model), "--limit", "30",
            "--max-tokens", "24", "--n-ctx", "1024", "--threads", "2", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "] 3/30" in line or "] 6/30" in line:
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    done = len((out / "results.jsonl").read_text().splitlines())
    assert 3 <= done < 30
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"({done} taken over from an earlier run)" in again.stderr
    assert "| F16 |" in again.stdout and "| 30 |" in again.stdout
    assert len((out / "results.jsonl").read_text().splitlines()) == 30


@pytest.mark.parametrize(("args", "message"), [
    (["--oracle", "--seed", "3"], "--seed goes with --sample N"),
    (["--oracle", "--limit", "0"], "argument --limit: must be from 1 to 100,000"),
    (["--samples", "/nonexistent/s.jsonl"], "samples file not found"),
    (["--oracle", "--subset", "nope"], "argument --subset: invalid choice"),
    (["--models"], "argument --models: expected at least one argument"),
    (["--oracle", "--timeout", "nan"], "argument --timeout: must be a number"),
])
def test_user_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    proc = run(*args)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_samples_with_a_selection_or_an_unknown_task_are_refused(tmp_path: Path) -> None:
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "SingleLineInfilling/HumanEval/0/L0", "completion": "x"}\n')
    proc = run("--samples", str(samples), "--limit", "2")
    assert proc.returncode == 2 and "--samples runs every line" in proc.stderr
    proc = run("--samples", str(samples), "--subset", "multi-line")
    assert proc.returncode == 2 and "is not in the multi-line subset" in proc.stderr
