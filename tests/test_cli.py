"""The headless CLI as a script would use it: real processes, real model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import UsageError, split_at_cursor
from app.core.engine import CompletionRequest, Engine, EngineConfig
from app.core.fim import Layout

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "def f(x):\n    y = x * 2\n    \n    return y\n"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, timeout=120)


def test_inspect_json(tiny_model: Path) -> None:
    proc = run("inspect", str(tiny_model), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["arch"] == "starcoder2"
    assert data["file_type"] == "F16"
    assert data["n_layer"] == 2 and data["n_embd"] == 64 and data["n_head"] == 4 and data["n_head_kv"] == 2
    assert data["n_vocab"] == 4096 and data["n_ctx_train"] == 16384
    assert data["size_bytes"] == tiny_model.stat().st_size
    assert data["n_params"] == 353_920
    assert data["fim"] == {"pre": 1, "suf": 3, "mid": 2, "pad": 4, "rep": 5, "sep": 6}


@pytest.mark.parametrize("layout", ["spm", "psm"])
def test_complete_json_matches_the_engine(tiny_model: Path, tmp_path: Path, layout: str) -> None:
    source = tmp_path / "f.py"
    source.write_text(SOURCE)
    proc = run("complete", "--model", str(tiny_model), "--file", str(source), "--cursor", "3:5",
               "--layout", layout, "--max-tokens", "6", "--n-ctx", "2048", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) >= {"text", "prompt_tokens", "stop_reason", "stats"}
    assert set(data["stats"]) == {"prompt_tokens", "cached_tokens", "generated_tokens", "prompt_ms", "ttft_ms",
                                  "prompt_tps", "gen_tps", "ctx_used", "ctx_size"}
    assert data["stats"]["ctx_size"] == 2048
    engine = Engine()
    engine.load(tiny_model, EngineConfig(n_ctx=2048))
    prefix, suffix = split_at_cursor(SOURCE, "3:5")
    expected = engine.complete(CompletionRequest(prefix, suffix, Layout(layout), max_tokens=6))
    assert data["prompt_tokens"] == expected.prompt.tokens
    assert data["prompt_tokens"][0] == 1  # <fim_prefix>
    assert data["text"] == expected.text  # greedy: the same in another process


def test_complete_prefix_and_suffix_files(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("x = ")
    (tmp_path / "s.txt").write_text("\nprint(x)\n")
    proc = run("complete", "--model", str(tiny_model), "--prefix-file", str(tmp_path / "p.txt"),
               "--suffix-file", str(tmp_path / "s.txt"), "--max-tokens", "3", "--n-ctx", "1024", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["stats"]["generated_tokens"] <= 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cursor", "99:1"], "outside the file"),
        (["--cursor", "nope"], "LINE:COL"),
        (["--cursor", "1:50"], "column 50"),
        ([], "--file needs --cursor"),
    ],
)
def test_user_errors_exit_2_with_one_line(tiny_model: Path, tmp_path: Path, args: list[str], message: str) -> None:
    source = tmp_path / "f.py"
    source.write_text(SOURCE)
    proc = run("complete", "--model", str(tiny_model), "--file", str(source), *args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_missing_model_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("x")
    proc = run("complete", "--model", str(tmp_path / "none.gguf"), "--prefix-file", str(tmp_path / "p.txt"))
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_split_at_cursor() -> None:
    assert split_at_cursor("ab\ncd", "2:2") == ("ab\nc", "d")
    assert split_at_cursor("ab\ncd", "1:3") == ("ab", "\ncd")
    with pytest.raises(UsageError):
        split_at_cursor("ab", "0:1")
