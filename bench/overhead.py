"""Scenario 1: prompt and generation speed through Starpad's engine against llama.cpp itself.

The reference is ``llama-bench`` built from the very llama.cpp source the binding vendors
(bench/build_llama_tools.sh). Without that binary it is llama-cpp-python's raw C API in
this process: the same decode loop with no prompt building, sampling, streaming or stop
checks — exactly the work Starpad adds. Runs alternate A-B-B-A so that drift on a noisy
machine lands on both sides; medians are reported.
"""

from __future__ import annotations

import ctypes
import json
import logging
import random
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.core.engine import CancelToken, CompletionRequest, Engine, SamplingParams
from app.core.fim import Layout
from bench.workload import exact_token_prompt
from bench import offload

log = logging.getLogger("starpad.bench.overhead")


@dataclass
class Speed:
    pp_tps: float
    tg_tps: float


@dataclass
class OverheadResult:
    reference: str  # "llama-bench" | "low-level loop"
    n_prompt: int
    n_gen: int
    threads: int
    starpad: list[Speed] = field(default_factory=list)
    llama_cpp: list[Speed] = field(default_factory=list)

    @property
    def pp_ratio(self) -> float:
        return _median([s.pp_tps for s in self.starpad]) / _median([s.pp_tps for s in self.llama_cpp])

    @property
    def tg_ratio(self) -> float:
        return _median([s.tg_tps for s in self.starpad]) / _median([s.tg_tps for s in self.llama_cpp])

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data.update(
            starpad_median={"pp_tps": _median([s.pp_tps for s in self.starpad]),
                            "tg_tps": _median([s.tg_tps for s in self.starpad])},
            llama_cpp_median={"pp_tps": _median([s.pp_tps for s in self.llama_cpp]),
                              "tg_tps": _median([s.tg_tps for s in self.llama_cpp])},
            pp_ratio=self.pp_ratio,
            tg_ratio=self.tg_ratio,
        )
        return data


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ------------------------------------------------------------------ Starpad's side
def _generation_bias(engine: Engine) -> tuple[tuple[int, float], ...]:
    """Ban every token that ends a completion so exactly ``n_gen`` tokens are made, as
    llama-bench does (random weights would otherwise stop at a random point)."""
    return tuple((t, float("-inf")) for t in sorted(engine.end_token_ids()))


def starpad_speed(engine: Engine, prompt_text: str, n_gen: int) -> Speed:
    """pp from a cold prompt, tg from a separate run that starts at an empty context
    (llama-bench's tg test also starts at position 0)."""
    bias = _generation_bias(engine)
    engine.reset_cache()
    # With a cancel token, exactly as the editor's worker calls the engine.
    pp = engine.complete(
        CompletionRequest(prefix=prompt_text, layout=Layout.PREFIX_ONLY, max_tokens=1,
                          sampling=SamplingParams(logit_bias=bias)),
        cancel=CancelToken(),
    )
    engine.reset_cache()
    tg = engine.complete(
        CompletionRequest(prefix="def", layout=Layout.PREFIX_ONLY, max_tokens=n_gen + 1,
                          sampling=SamplingParams(logit_bias=bias)),
        cancel=CancelToken(),
    )
    if tg.stats.generated_tokens < n_gen:
        raise RuntimeError(f"generation stopped after {tg.stats.generated_tokens} tokens ({tg.stop_reason})")
    engine.reset_cache()
    return Speed(pp.stats.prompt_tps, tg.stats.gen_tps)


# ------------------------------------------------------------------ references
def llama_bench_speed(binary: Path, model: Path, n_prompt: int, n_gen: int, threads: int, n_batch: int) -> Speed:
    """One llama-bench process: pp and tg tests with a warm-up each, like its defaults."""
    cmd = [
        str(binary), "-m", str(model), *offload.peer_args(), "-t", str(threads), "-p", str(n_prompt), "-n", str(n_gen),
        "-b", str(n_batch), "-ub", str(n_batch), "-r", "1", "--load-mode", "none", "-o", "json",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"llama-bench failed ({out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
    rows = json.loads(out.stdout)
    pp = next(r["avg_ts"] for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0)
    tg = next(r["avg_ts"] for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0)
    return Speed(float(pp), float(tg))


class LowLevelLoop:
    """llama-cpp-python's raw C API: batch decode of random tokens, no sampling, like llama-bench."""

    def __init__(self, model: Path, threads: int, n_batch: int, n_ctx: int) -> None:
        import llama_cpp

        self._lib = llama_cpp
        params = llama_cpp.llama_model_default_params()
        params.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
        self.model = llama_cpp.llama_model_load_from_file(str(model).encode(), params)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {model}")
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx, cparams.n_batch, cparams.n_ubatch = n_ctx, n_batch, n_batch
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not create a {n_ctx}-token context")
        # llama.cpp lowers the batch to the context; a larger llama_decode batch aborts the process.
        self.n_batch = llama_cpp.llama_n_batch(self.ctx)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.rng = random.Random(42)

    def _decode(self, tokens: list[int], start: int) -> None:
        lib, b = self._lib, self.batch
        b.n_tokens = len(tokens)
        for i, tok in enumerate(tokens):
            b.token[i] = tok
            b.pos[i] = start + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = i == len(tokens) - 1
        if lib.llama_decode(self.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")

    def speed(self, n_prompt: int, n_gen: int) -> Speed:
        lib = self._lib
        lib.llama_memory_clear(lib.llama_get_memory(self.ctx), True)
        tokens = [self.rng.randrange(self.n_vocab) for _ in range(n_prompt)]
        started = time.perf_counter()
        for pos in range(0, n_prompt, self.n_batch):
            self._decode(tokens[pos : pos + self.n_batch], pos)
        lib.llama_synchronize(self.ctx)
        pp_s = time.perf_counter() - started
        lib.llama_memory_clear(lib.llama_get_memory(self.ctx), True)
        started = time.perf_counter()
        for pos in range(n_gen):
            self._decode([self.rng.randrange(self.n_vocab)], pos)
        lib.llama_synchronize(self.ctx)
        tg_s = time.perf_counter() - started
        return Speed(n_prompt / pp_s, n_gen / tg_s)

    def close(self) -> None:
        lib = self._lib
        lib.llama_batch_free(self.batch)
        lib.llama_free(self.ctx)
        lib.llama_model_free(self.model)
        self.ctx = self.model = ctypes.c_void_p()


def run(model: Path, rounds: int, n_prompt: int, n_gen: int, threads: int, llama_bench: Path | None) -> OverheadResult:
    n_ctx = max(1024, n_prompt + n_gen + 64)
    engine = Engine()
    engine.load(model, offload.engine_config(n_ctx=n_ctx, n_threads=threads))
    n_batch = engine.n_batch  # the batch Starpad really decodes with: the references use the same
    prompt_text = exact_token_prompt(engine.tokenize, n_prompt)
    n_actual = len(engine.tokenize(prompt_text))
    result = OverheadResult("llama-bench" if llama_bench else "low-level loop", n_actual, n_gen, threads)
    loop = None if llama_bench else LowLevelLoop(model, threads, n_batch, n_ctx)

    def reference() -> Speed:
        if llama_bench is not None:
            return llama_bench_speed(llama_bench, model, n_actual, n_gen, threads, n_batch)
        assert loop is not None
        return loop.speed(n_actual, n_gen)

    try:
        starpad_speed(engine, prompt_text, 4)  # warm-up: first-touch of compute buffers
        if loop is not None:
            loop.speed(min(n_actual, 32), 2)
        for r in range(rounds):
            order = ("ref", "starpad") if r % 2 == 0 else ("starpad", "ref")  # A-B-B-A
            for side in order:
                if side == "ref":
                    result.llama_cpp.append(reference())
                else:
                    result.starpad.append(starpad_speed(engine, prompt_text, n_gen))
            log.info("round %d/%d: starpad %s, llama.cpp %s", r + 1, rounds, result.starpad[-1], result.llama_cpp[-1])
    finally:
        engine.close()
        if loop is not None:
            loop.close()
    return result
