"""Contexts from 64 tokens up to the trained size run; anything else is a typed error.

llama.cpp lowers its batch to a small context but took batches of 512 from us, and a
batch larger than its own is an assertion that aborts the process (exit 134), so the
small-context runs happen in a child process: a regression fails the test instead of
killing pytest.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.engine import (
    CompletionRequest,
    ContextSizeError,
    Engine,
    EngineConfig,
    EngineConfigError,
    resolve_context,
)
from app.core.fim import Layout, PromptBudget, PromptBuilder, RepoFile
from app.core.limits import MAX_N_CTX, MAX_THREADS, MIN_N_CTX

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys
from app.core.engine import CompletionRequest, Engine, EngineConfig
from app.core.fim import Layout

model, n_ctx = sys.argv[1], int(sys.argv[2])
source = "".join(f"def function_{i}(value):\n    return value * {i} + {i * 7}\n\n" for i in range(80))
middle = len(source) // 2
prefix, suffix = source[:middle], source[middle:]
engine = Engine()
engine.load(model, EngineConfig(n_ctx=n_ctx, n_threads=2))
out = {"n_ctx": engine.n_ctx, "n_batch": engine.n_batch, "source_tokens": len(engine.tokenize(source)), "runs": []}
for layout in (Layout.SPM, Layout.PSM, Layout.PREFIX_ONLY):
    for max_tokens in (8, 1000):
        result = engine.complete(CompletionRequest(prefix, suffix, layout, max_tokens=max_tokens))
        out["runs"].append({
            "layout": layout.value, "max_tokens": max_tokens, "prompt": len(result.prompt.tokens),
            "prefix_dropped": result.prompt.prefix_chars_dropped,
            "suffix_dropped": result.prompt.suffix_chars_dropped,
            "generated": result.stats.generated_tokens, "ctx_used": result.stats.ctx_used,
            "stop": result.stop_reason,
        })
tokens = engine.tokenize(source)[: engine.n_ctx - 1]
out["scored"] = len(engine.score(tokens[:10], tokens[10:]))
out["targets"] = len(tokens) - 10
print(json.dumps(out))
"""


@pytest.mark.parametrize("n_ctx", [64, 100, 300])
def test_a_small_context_completes_cuts_the_prompt_and_says_so(tiny_model: Path, n_ctx: int) -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tiny_model), str(n_ctx)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != -signal.SIGABRT, proc.stderr[-2000:]  # GGML_ASSERT(n_tokens_all <= n_batch)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["n_batch"] == min(n_ctx, 512)  # what llama.cpp really takes per decode
    assert out["n_ctx"] >= n_ctx and out["n_ctx"] % 256 == 0  # llama.cpp pads the context
    assert out["source_tokens"] > 2 * out["n_ctx"]  # several hundred tokens: the prompt must be cut
    for run in out["runs"]:
        assert run["prompt"] <= out["n_ctx"] - min(run["max_tokens"], out["n_ctx"] // 2), run
        assert run["prefix_dropped"] > 0, run  # the cut is reported on the prompt
        assert run["ctx_used"] <= out["n_ctx"], run
        assert run["generated"] >= 1, run
    # Teacher forcing across several batches of the small context.
    assert out["scored"] == out["targets"] > out["n_batch"]


def test_context_limits_are_typed_errors() -> None:
    with pytest.raises(ContextSizeError, match="at least 64"):
        resolve_context(EngineConfig(n_ctx=MIN_N_CTX - 1), 16384)
    with pytest.raises(ContextSizeError, match="at least 64"):
        resolve_context(EngineConfig(n_ctx=0), 16384)  # llama.cpp would silently use the trained size
    with pytest.raises(ContextSizeError, match="trained on"):
        resolve_context(EngineConfig(n_ctx=16385), 16384)
    with pytest.raises(ContextSizeError, match="Starpad supports"):
        resolve_context(EngineConfig(n_ctx=2**32), 0)  # ctypes would wrap it to 0
    assert resolve_context(EngineConfig(n_ctx=MIN_N_CTX), 16384) == (MIN_N_CTX, None)
    assert resolve_context(EngineConfig(n_ctx=16384), 16384) == (16384, None)
    assert resolve_context(EngineConfig(n_ctx=MAX_N_CTX), 0) == (MAX_N_CTX, None)
    n_ctx, note = resolve_context(EngineConfig(n_ctx=32768, clamp_to_trained=True), 16384)
    assert n_ctx == 16384 and note is not None and "16,384" in note and "32,768" in note


@pytest.mark.parametrize("threads", [0, -1, MAX_THREADS + 1, 100_000])
def test_thread_counts_llama_cpp_cannot_take_are_typed_errors(threads: int) -> None:
    with pytest.raises(EngineConfigError, match=f"1 to {MAX_THREADS}"):
        resolve_context(EngineConfig(n_ctx=4096, n_threads=threads), 16384)


def test_load_refuses_a_context_beyond_training_and_keeps_the_loaded_model(tiny_model: Path) -> None:
    engine = Engine()
    engine.load(tiny_model, EngineConfig(n_ctx=1024, n_threads=2))
    with pytest.raises(ContextSizeError):
        engine.load(tiny_model, EngineConfig(n_ctx=16385, n_threads=2))
    with pytest.raises(ContextSizeError):
        engine.load(tiny_model, EngineConfig(n_ctx=16, n_threads=2))
    assert engine.is_loaded and engine.n_ctx == 1024
    engine.close()


def test_the_window_may_ask_for_more_than_trained_and_gets_a_note(tiny_model: Path) -> None:
    engine = Engine()
    info = engine.load(tiny_model, EngineConfig(n_ctx=32768, n_threads=2, clamp_to_trained=True))
    assert engine.n_ctx == 16384
    assert any("16,384" in note for note in info.notes)
    engine.close()


def test_the_batch_follows_llama_cpp_not_the_config(tiny_model: Path) -> None:
    engine = Engine()
    engine.load(tiny_model, EngineConfig(n_ctx=100, n_threads=2))
    assert (engine.n_ctx, engine.n_batch) == (256, 100)
    engine.load(tiny_model, EngineConfig(n_ctx=4096, n_threads=2, n_batch=64))
    assert (engine.n_ctx, engine.n_batch) == (4096, 64)
    engine.close()


def test_a_request_longer_than_the_context_streams_until_the_context_is_full(tiny_model: Path) -> None:
    engine = Engine()
    engine.load(tiny_model, EngineConfig(n_ctx=256, n_threads=2))
    result = engine.complete(CompletionRequest("def f(x):\n" * 200, max_tokens=4000))
    assert result.prompt.prefix_chars_dropped > 0
    assert len(result.prompt.tokens) <= 128  # half the context stays free to generate into
    assert result.stats.ctx_used <= 256
    engine.close()


# ----------------------------------------------------------------- prompt budget
def test_the_budget_leaves_a_prompt_whatever_the_completion_length() -> None:
    assert PromptBudget(256, 64).prompt_tokens == 192
    assert PromptBudget(256, 1000).prompt_tokens == 128  # was 0: "leaves no room for a prompt"
    assert PromptBudget(64, 0).prompt_tokens == 63  # at least one token is generated


def test_a_long_repository_name_or_path_yields_to_the_code(engine: Engine) -> None:
    builder = PromptBuilder(engine.tokenize, engine.fim_tokens)
    budget = PromptBudget(64, 16)
    prompt = builder.build("x = 1\n" * 50, "y = 2\n" * 50, budget, Layout.SPM,
                           path="deep/" * 40 + "main.py", repo_name="a-very-long-repository-name " * 20,
                           repo_files=(RepoFile("other.py", "z = 3\n"),))
    assert len(prompt.tokens) <= budget.prompt_tokens
    assert prompt.repo_files_used == ()
    assert prompt.prefix_chars_dropped > 0 and prompt.suffix_chars_dropped > 0
    assert engine.fim_tokens.rep not in prompt.tokens
