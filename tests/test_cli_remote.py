"""``--server`` on complete, compare and eval: real processes against a real llama-server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.engine import CompletionRequest, Engine
from tests.remote_servers import LlamaServer, free_port, require_llama_server

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\nprint(add(1, 2))\n"


def run(*args: str, key: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STARPAD_API_KEY"}
    if key is not None:
        env["STARPAD_API_KEY"] = key
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def binary() -> Path:
    return require_llama_server()


@pytest.fixture(scope="module")
def server(binary: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    with LlamaServer(binary, tiny_model, tmp_path_factory.mktemp("cli-server"), extra=("--api-key", "sk-test")) as s:
        yield s


@pytest.fixture()
def prompt_files(tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "p.py").write_text(PREFIX)
    (tmp_path / "s.py").write_text(SUFFIX)
    return str(tmp_path / "p.py"), str(tmp_path / "s.py")


def test_complete_on_a_server_sends_the_local_prompt_and_reports_the_server(
    server: LlamaServer, prompt_files: tuple[str, str], engine: Engine, tiny_model: Path
) -> None:
    proc = run("complete", "--server", server.url, "--server-kind", "llama-server", "--prefix-file", prompt_files[0],
               "--suffix-file", prompt_files[1], "--max-tokens", "6", "--json", key="sk-test")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["server"] == {"url": server.url, "kind": "llama-server", "model": str(tiny_model)}
    assert data["prompt_tokens"] == engine.build_prompt(CompletionRequest(PREFIX, SUFFIX, max_tokens=6)).tokens
    assert data["stats"]["prompt_tokens"] == len(data["prompt_tokens"])
    assert data["stats"]["generated_tokens"] <= 6
    assert f"Remote: 127.0.0.1:{server.port} · {tiny_model.name}" in proc.stderr


@pytest.mark.parametrize(
    ("args", "key", "message"),
    [
        (["--server-kind", "llama-server"], "sk-wrong", r"refused the request \(401\): check the API key"),
        (["--server-kind", "llama-server"], None, r"refused the request \(401\)"),
        (["--server-kind", "llama-server", "--server-model", "starcoder2-15b"], "sk-test", "not starcoder2-15b"),
        (["--server-kind", "openai", "--server-timeout", "0.1"], "sk-test", r"--server-timeout: .*0.5"),
        ([], "sk-test", "--server needs --server-kind llama-server or --server-kind openai"),
    ],
)
def test_server_failures_exit_2_with_one_line(
    server: LlamaServer, prompt_files: tuple[str, str], args: list[str], key: str | None, message: str
) -> None:
    proc = run("complete", "--server", server.url, *args, "--prefix-file", prompt_files[0], "--max-tokens", "2",
               key=key)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr


def test_a_server_that_is_down_exits_2_with_one_line(prompt_files: tuple[str, str]) -> None:
    port = free_port()
    proc = run("complete", "--server", f"http://127.0.0.1:{port}", "--server-kind", "llama-server",
               "--prefix-file", prompt_files[0], timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"starpad: error: cannot reach the server at 127.0.0.1:{port}")


def test_model_and_server_are_one_or_the_other(tiny_model: Path, prompt_files: tuple[str, str]) -> None:
    both = run("complete", "--model", str(tiny_model), "--server", "http://127.0.0.1:9", "--server-kind",
               "openai", "--prefix-file", prompt_files[0])
    assert both.returncode == 2 and "not both" in both.stderr
    neither = run("complete", "--prefix-file", prompt_files[0])
    assert neither.returncode == 2 and "give --model FILE" in neither.stderr


def test_compare_a_local_file_with_the_servers_model(
    server: LlamaServer, prompt_files: tuple[str, str], tiny_model: Path
) -> None:
    proc = run("compare", "--models", str(tiny_model), "--server", server.url, "--server-kind", "llama-server",
               "--prefix-file", prompt_files[0], "--suffix-file", prompt_files[1], "--max-tokens", "4",
               "--n-ctx", "2048", "--json", key="sk-test")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    local, remote = data["results"]
    assert local["model"] == str(tiny_model) and data["reference"] == str(tiny_model)
    assert remote["model"] == f"{tiny_model.name} @ 127.0.0.1:{server.port}"
    assert remote["quant"] == "server"
    assert remote["agreement"] is None and remote["perplexity"] is None
    assert remote["ttft_ms"] > 0
    assert local["agreement"] == 1.0


def test_eval_scores_the_servers_model(server: LlamaServer, tmp_path: Path, tiny_model: Path) -> None:
    proc = run("eval", "--server", server.url, "--server-kind", "llama-server", "--subset", "single-line",
               "--limit", "2", "--max-tokens", "8", "--out", str(tmp_path / "run"), "--json", key="sk-test")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    (model,) = data["models"]
    assert model["model"] == f"default model @ 127.0.0.1:{server.port}"  # named before connecting: the run key
    assert model["n"] == 2
    assert len(data["results"]) == 2
    assert (tmp_path / "run" / "results.jsonl").is_file()
