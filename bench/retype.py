"""Scenario 2: time to first token while the user keeps typing.

A 2,000-token FIM prompt (1,500 tokens before the caret, 500 after) is completed cold,
then again after one typed character and after five more. Starpad keeps the KV cache and
re-evaluates only what changed; the ratio to the cold time says how much of the prompt
was really recomputed. The same edits go to the peer llama.vscode uses: llama.cpp's
``llama-server`` ``/infill`` with ``cache_prompt`` and llama.vscode's ``--cache-reuse 256``,
started on 127.0.0.1 from the same vendored llama.cpp.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.engine import CompletionRequest, Engine
from app.core.fim import Layout
from bench.workload import FimDocument, fim_document
from bench import offload

log = logging.getLogger("starpad.bench.retype")

#: What the user types at the caret: one character, then five more.
TYPED = ("r", "result")
STEPS = ("cold", "+1 char", "+5 chars")
N_PREDICT = 4


@dataclass
class RetypeRun:
    peer: str  # "starpad" | "llama-server"
    layout: str  # "spm" | "psm"
    prompt_tokens: int
    ttft_ms: dict[str, float] = field(default_factory=dict)
    evaluated_tokens: dict[str, int] = field(default_factory=dict)

    @property
    def ratios(self) -> dict[str, float]:
        cold = self.ttft_ms["cold"]
        return {step: self.ttft_ms[step] / cold for step in STEPS[1:] if step in self.ttft_ms}

    def to_json(self) -> dict[str, object]:
        return {
            "peer": self.peer, "layout": self.layout, "prompt_tokens": self.prompt_tokens,
            "ttft_ms": self.ttft_ms, "evaluated_tokens": self.evaluated_tokens, "ratio_to_cold": self.ratios,
        }


def _edits(doc: FimDocument) -> list[tuple[str, str]]:
    return [(doc.prefix, doc.suffix)] + [(doc.prefix + typed, doc.suffix) for typed in TYPED]


# ------------------------------------------------------------------ Starpad
def starpad_runs(
    model: Path, threads: int, n_ctx: int, n_before: int, n_after: int
) -> tuple[list[RetypeRun], FimDocument]:
    engine = Engine()
    engine.load(model, offload.engine_config(n_ctx=n_ctx, n_threads=threads))
    runs = []
    try:
        doc = fim_document(engine.tokenize, n_before, n_after)
        engine.complete(CompletionRequest(prefix="def f(x):\n    ", max_tokens=2))  # warm-up, like the server's
        for layout in (Layout.SPM, Layout.PSM):
            engine.reset_cache()
            run = None
            for step, (prefix, suffix) in zip(STEPS, _edits(doc), strict=True):
                request = CompletionRequest(prefix=prefix, suffix=suffix, layout=layout, max_tokens=N_PREDICT)
                result = engine.complete(request)
                stats = result.stats
                run = run or RetypeRun("starpad", layout.value, stats.prompt_tokens)
                run.ttft_ms[step] = stats.ttft_ms
                run.evaluated_tokens[step] = stats.prompt_tokens - stats.cached_tokens
                log.info("starpad %s %s: ttft %.0f ms, evaluated %d of %d tokens", layout.value, step,
                         stats.ttft_ms, run.evaluated_tokens[step], stats.prompt_tokens)
            assert run is not None
            runs.append(run)
    finally:
        engine.close()
    return runs, doc


# ------------------------------------------------------------------ llama-server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """A llama-server child process on 127.0.0.1, configured as llama.vscode recommends
    (minus the GPU flags). ``-b 2048`` keeps the whole 2,000-token prompt: /infill cuts the
    prefix to 3/4 and the suffix to 1/4 of the batch size."""

    def __init__(self, binary: Path, model: Path, threads: int, n_ctx: int, spm: bool) -> None:
        self.port = _free_port()
        cmd = [
            str(binary), "-m", str(model), *offload.peer_args(),
            "-t", str(threads), "-tb", str(threads), "-c", str(n_ctx),
            "-b", "2048", "-ub", "512", "-np", "1", "--cache-reuse", "256", "--load-mode", "none", "--no-webui",
            "--host", "127.0.0.1", "--port", str(self.port),
        ] + (["--spm-infill"] if spm else [])
        self.log_path = Path(f"/tmp/starpad-bench-llama-server-{self.port}.log")
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.proc.returncode}); see {self.log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("llama-server did not become ready")

    def infill(self, prefix: str, suffix: str) -> tuple[float, dict[str, Any]]:
        """Time to the first streamed token (client side, like the editor sees it) and the
        server's own timings."""
        body = json.dumps({
            "input_prefix": prefix, "input_suffix": suffix, "n_predict": N_PREDICT, "cache_prompt": True,
            "stream": True, "samplers": ["top_k"], "top_k": 1,
        })
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=900)
        started = time.perf_counter()
        conn.request("POST", "/infill", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"/infill answered {response.status}: {response.read()[:300]!r}")
        first: float | None = None
        timings: dict[str, object] = {}
        for raw in response:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue
            first = first or time.perf_counter()
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            event = json.loads(payload)
            timings = event.get("timings", timings)
            if event.get("stop"):
                break
        conn.close()
        if first is None:
            raise RuntimeError("llama-server streamed nothing")
        return (first - started) * 1000, timings

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def server_runs(binary: Path, model: Path, threads: int, n_ctx: int, doc: FimDocument) -> list[RetypeRun]:
    runs = []
    for layout in (Layout.SPM, Layout.PSM):
        server = LlamaServer(binary, model, threads, n_ctx, spm=layout is Layout.SPM)
        try:
            server.wait_ready()
            run = None
            for step, (prefix, suffix) in zip(STEPS, _edits(doc), strict=True):
                ttft, timings = server.infill(prefix, suffix)
                n_prompt = int(timings.get("prompt_n", 0)) + int(timings.get("cache_n", 0))
                run = run or RetypeRun("llama-server", layout.value, n_prompt)
                run.ttft_ms[step] = ttft
                run.evaluated_tokens[step] = int(timings.get("prompt_n", -1))
                log.info("llama-server %s %s: ttft %.0f ms, evaluated %s of %d tokens", layout.value, step, ttft,
                         timings.get("prompt_n"), n_prompt)
            assert run is not None
            runs.append(run)
        finally:
            server.close()
    return runs
