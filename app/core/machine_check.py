"""A quick check of this machine's speed: memory bandwidth and llama.cpp's kernels per quant.

Why measure instead of guessing from the CPU's name? Generation reads every weight once
per token, so it is bounded by memory bandwidth; prompt processing multiplies matrices,
so it is bounded by how fast llama.cpp's kernel *for that quant type* runs on these
cores. Small K-quants (Q2_K, Q3_K) are cheap to read but costly to unpack: on two cores
they are compute-bound where Q8_0 is not. No table of CPUs predicts that; a few seconds
of measurement on this machine does.

The check (``run_machine_check``, about 10-20 s on two cores) does two things:

* reads a 256 MiB buffer with NumPy on the generation threads (NumPy releases the GIL
  and its reductions are SIMD): the app runs from a PyInstaller bundle with no compiler,
  so bench/membw.c is not an option here;
* writes a small StarCoder2-architecture model (two layers of the 3B's width, random
  weights, a 256-token byte vocabulary) into a temporary folder, quantizes it to each
  quant of the catalog with llama.cpp's own quantizer, and times a prompt batch and a
  few generated tokens on each. Its weights (tens of MB) stay mostly in the CPU's caches,
  so these runs measure the kernels' compute rate, not the memory.

The result is cached per machine (CPU model, core count, threads, llama.cpp version) in
a JSON file; ``app.core.speed`` turns it into predictions per catalog row. The model
dialog's "Check speed" button and ``starpad fit --recheck`` run it again.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger("starpad.speed")

#: Bumped when the way the check measures changes: older cached results are ignored.
CHECK_VERSION = 1
#: The mini model: StarCoder2's layer layout at a third of the 3B's width, two layers
#: (21 M parameters: quantized in about a second per type, and small enough to sit in
#: the caches, so its generation measures the kernels, not the memory).
MINI_N_EMBD = 1024
MINI_N_FF = 4096
MINI_N_HEAD = 8
MINI_N_HEAD_KV = 2
MINI_N_LAYER = 2
MINI_N_VOCAB = 256
#: Prompt batch and generated tokens timed per quant type.
PROMPT_TOKENS = 64
GEN_TOKENS = 8
BANDWIDTH_MIB = 256
ProgressFn = Callable[[str, float], None]


@dataclass(frozen=True)
class KernelRate:
    """What llama.cpp's kernels for one quant achieved on the mini model.

    Rates are in weight-parameters × tokens per second: divide by a model's parameter
    count to get its tokens per second (compute bound).
    """

    prompt_param_tps: float
    gen_param_tps: float


@dataclass(frozen=True)
class MachineSpeed:
    """One machine's measured numbers, as cached."""

    bandwidth_bytes_per_s: float
    threads: int
    kernels: dict[str, KernelRate] = field(default_factory=dict)
    cpu: str = ""
    cores: int = 0
    llama_cpp_version: str = ""
    measured_at: float = 0.0
    seconds: float = 0.0
    version: int = CHECK_VERSION

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> MachineSpeed:
        kernels_raw = data.get("kernels", {})
        if not isinstance(kernels_raw, dict):
            raise ValueError("kernels must be an object")
        kernels = {str(k): KernelRate(float(v["prompt_param_tps"]), float(v["gen_param_tps"]))
                   for k, v in kernels_raw.items()}
        bandwidth = float(data["bandwidth_bytes_per_s"])  # type: ignore[arg-type]
        if not bandwidth > 0:
            raise ValueError("bandwidth must be positive")
        return cls(
            bandwidth_bytes_per_s=bandwidth,
            threads=int(data["threads"]),  # type: ignore[call-overload]
            kernels=kernels,
            cpu=str(data.get("cpu", "")),
            cores=int(data.get("cores", 0)),  # type: ignore[call-overload]
            llama_cpp_version=str(data.get("llama_cpp_version", "")),
            measured_at=float(data.get("measured_at", 0.0)),  # type: ignore[arg-type]
            seconds=float(data.get("seconds", 0.0)),  # type: ignore[arg-type]
            version=int(data.get("version", 0)),  # type: ignore[call-overload]
        )


# ------------------------------------------------------------------ identity and cache
def cpu_name() -> str:
    """The CPU's marketing name where the OS tells it (``/proc/cpuinfo`` on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def llama_cpp_version() -> str:
    try:
        import llama_cpp

        return str(llama_cpp.__version__)
    except ImportError:
        return "none"


def machine_key(threads: int) -> str:
    """What must match for cached numbers to stand for this machine."""
    cores = os.cpu_count() or 1
    return f"{cpu_name()}|{cores} cores|{threads} threads|llama.cpp {llama_cpp_version()}|v{CHECK_VERSION}"


def cache_path() -> Path:
    """``$XDG_CACHE_HOME/starpad/machine-speed.json`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "starpad" / "machine-speed.json"


def load_cached(threads: int, path: Path | None = None) -> MachineSpeed | None:
    """The cached check for this machine and thread count, or None (missing, stale, corrupt)."""
    path = path or cache_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entry = data[machine_key(threads)]
        return MachineSpeed.from_json(entry)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.info("no usable cached machine check in %s: %s", path, exc)
        return None


def save_cached(speed: MachineSpeed, path: Path | None = None) -> None:
    """Keep other machines' entries (a shared home folder): replace only this one."""
    path = path or cache_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[machine_key(speed.threads)] = speed.to_json()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home: the check still served this session
        log.warning("could not cache the machine check in %s: %s", path, exc)


# ------------------------------------------------------------------ bandwidth
def measure_bandwidth(threads: int, buffer_mib: int = BANDWIDTH_MIB, passes: int = 4) -> float:
    """Read bandwidth in bytes/s: the best of ``passes`` SIMD max-reductions over a buffer
    far larger than the caches, split over ``threads`` Python threads (NumPy releases the
    GIL). ``max`` rather than ``sum``: it needs no wide accumulators, so it stays memory-bound."""
    data = np.ones((buffer_mib << 20) // 4, dtype=np.float32)
    parts = np.array_split(data, max(1, threads))
    best = 0.0
    for _ in range(passes):
        workers = [threading.Thread(target=np.max, args=(part,)) for part in parts]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = max(best, data.nbytes / (time.perf_counter() - started))
    return best


# ------------------------------------------------------------------ mini model
def _mini_tensors() -> list[tuple[str, tuple[int, ...]]]:
    e, f = MINI_N_EMBD, MINI_N_FF
    kv = (e // MINI_N_HEAD) * MINI_N_HEAD_KV
    specs: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (MINI_N_VOCAB, e))]
    for i in range(MINI_N_LAYER):
        p = f"blk.{i}."
        specs += [
            (p + "attn_norm.weight", (e,)), (p + "attn_norm.bias", (e,)),
            (p + "attn_q.weight", (e, e)), (p + "attn_q.bias", (e,)),
            (p + "attn_k.weight", (kv, e)), (p + "attn_k.bias", (kv,)),
            (p + "attn_v.weight", (kv, e)), (p + "attn_v.bias", (kv,)),
            (p + "attn_output.weight", (e, e)), (p + "attn_output.bias", (e,)),
            (p + "ffn_norm.weight", (e,)), (p + "ffn_norm.bias", (e,)),
            (p + "ffn_up.weight", (f, e)), (p + "ffn_up.bias", (f,)),
            (p + "ffn_down.weight", (e, f)), (p + "ffn_down.bias", (e,)),
        ]
    specs += [("output_norm.weight", (e,)), ("output_norm.bias", (e,))]
    return specs


def mini_matmul_params() -> int:
    """Parameters the mini model multiplies per prompt token (its blocks' matrices)."""
    return sum(int(np.prod(s)) for n, s in _mini_tensors() if len(s) == 2 and n != "token_embd.weight")


def write_mini_model(path: Path, seed: int = 7) -> Path:
    """An F16 StarCoder2-architecture GGUF with random weights and a byte vocabulary."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch="starcoder2")
    writer.add_name("Starpad machine check (random weights)")
    writer.add_context_length(4096)
    writer.add_embedding_length(MINI_N_EMBD)
    writer.add_block_count(MINI_N_LAYER)
    writer.add_feed_forward_length(MINI_N_FF)
    writer.add_head_count(MINI_N_HEAD)
    writer.add_head_count_kv(MINI_N_HEAD_KV)
    writer.add_layer_norm_eps(1e-5)
    writer.add_rope_freq_base(1e6)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([f"<{i:02x}>" for i in range(MINI_N_VOCAB)])
    writer.add_token_types([gguf.TokenType.NORMAL] * MINI_N_VOCAB)
    writer.add_token_merges(["<0 0>"])  # llama.cpp requires the key; the merge is never used
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    rng = np.random.default_rng(seed)
    for name, shape in _mini_tensors():
        if len(shape) == 1:
            data = (np.ones(shape, dtype=np.float32) if name.endswith("norm.weight")
                    else rng.standard_normal(shape, dtype=np.float32) * 0.02)
        else:
            data = (rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[1])).astype(np.float16)
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _quantize(src: Path, dst: Path, quant: str, threads: int) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant.upper()}")
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0:
        raise RuntimeError(f"llama.cpp could not quantize the check model to {quant} (code {rc})")


def time_model(path: Path, threads: int, prompt_tokens: int = PROMPT_TOKENS, gen_tokens: int = GEN_TOKENS,
               rounds: int = 2) -> tuple[float, float]:
    """(seconds for one ``prompt_tokens`` batch, seconds per generated token), best of ``rounds``.

    Drives llama.cpp's low-level API directly: the engine's prompt building and FIM
    handling have nothing to time on a model with a byte vocabulary.
    """
    import llama_cpp
    from llama_cpp import _internals

    from app.core import llama_runtime

    llama_runtime.ensure_initialised()
    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = 0
    mparams.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
    model = _internals.LlamaModel(path_model=str(path), params=mparams, verbose=False)
    try:
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = 512
        cparams.n_batch = cparams.n_ubatch = max(prompt_tokens, 1)
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.no_perf = True
        ctx = _internals.LlamaContext(model=model, params=cparams, verbose=False)
        batch = _internals.LlamaBatch(n_tokens=max(prompt_tokens, 1), embd=0, n_seq_max=1, verbose=False)
        try:
            tokens = [(7 * i + 3) % MINI_N_VOCAB for i in range(prompt_tokens)]
            best_prompt = best_gen = float("inf")
            warm = False
            for _ in range(rounds + 1):  # the first round warms up (allocations, repacking): not kept
                llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx.ctx), True)
                batch.set_batch(tokens, n_past=0, logits_all=False)
                started = time.perf_counter()
                if llama_cpp.llama_decode(ctx.ctx, batch.batch) != 0:
                    raise RuntimeError("llama_decode failed on the check model")
                prompt_s = time.perf_counter() - started
                started = time.perf_counter()
                for i in range(gen_tokens):
                    batch.set_batch([(5 * i + 1) % MINI_N_VOCAB], n_past=prompt_tokens + i, logits_all=False)
                    if llama_cpp.llama_decode(ctx.ctx, batch.batch) != 0:
                        raise RuntimeError("llama_decode failed on the check model")
                gen_s = (time.perf_counter() - started) / max(gen_tokens, 1)
                if warm:
                    best_prompt, best_gen = min(best_prompt, prompt_s), min(best_gen, gen_s)
                warm = True
        finally:
            batch.close()
            ctx.close()
    finally:
        model.close()
    return best_prompt, best_gen


def measure_kernels(quants: list[str], threads: int, folder: Path,
                    progress: ProgressFn | None = None) -> dict[str, KernelRate]:
    """Time the mini model at each quant; a quant llama.cpp cannot make is left out."""
    src = write_mini_model(folder / "check-f16.gguf")
    params = mini_matmul_params()
    rates: dict[str, KernelRate] = {}
    for index, quant in enumerate(quants):
        if progress is not None:
            progress(f"timing {quant}", (index + 1) / (len(quants) + 1))
        path = src if quant.upper() == "F16" else folder / f"check-{quant}.gguf"
        try:
            if path != src:
                _quantize(src, path, quant, threads)
            prompt_s, gen_s = time_model(path, threads)
        except (RuntimeError, ValueError, AttributeError) as exc:
            log.warning("machine check skipped %s: %s", quant, exc)
            continue
        finally:
            if path != src:
                path.unlink(missing_ok=True)
        rates[quant] = KernelRate(params * PROMPT_TOKENS / prompt_s, params / gen_s)
        log.info("machine check %s: prompt %.1f Gparam-tok/s, gen %.1f Gparam/s",
                 quant, rates[quant].prompt_param_tps / 1e9, rates[quant].gen_param_tps / 1e9)
    return rates


def run_machine_check(quants: list[str], threads: int, progress: ProgressFn | None = None,
                      cache: Path | None = None, save: bool = True) -> MachineSpeed:
    """Measure this machine now (about 10-20 s), cache the result and return it."""
    started = time.perf_counter()
    if progress is not None:
        progress("measuring memory bandwidth", 0.0)
    bandwidth = measure_bandwidth(threads)
    with tempfile.TemporaryDirectory(prefix="starpad-check-") as tmp:
        kernels = measure_kernels(quants, threads, Path(tmp), progress)
    speed = MachineSpeed(
        bandwidth_bytes_per_s=bandwidth, threads=threads, kernels=kernels, cpu=cpu_name(),
        cores=os.cpu_count() or 1, llama_cpp_version=llama_cpp_version(), measured_at=time.time(),
        seconds=time.perf_counter() - started,
    )
    if save:
        save_cached(speed, cache)
    if progress is not None:
        progress("done", 1.0)
    log.info("machine check: %.1f GB/s, %d quant types, %.1f s", bandwidth / 1e9, len(kernels), speed.seconds)
    return speed
