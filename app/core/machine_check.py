"""A quick check of this machine's speed: memory bandwidth and llama.cpp's kernels per tensor type.

Why measure instead of guessing from the CPU's name? Generation reads every weight once
per token *and* runs a dot product over it; prompt processing multiplies matrices, so it
is bounded by how fast llama.cpp's kernel *for that tensor type* runs on these cores.
Small K-quants (Q2_K, Q3_K) are cheap to read but costly to unpack: on two cores they
are compute-bound where Q8_0 is not. No table of CPUs predicts that; a few seconds of
measurement on this machine does.

The check (``run_machine_check``, about 10-20 s on two cores):

* reads a 256 MiB buffer with NumPy on the generation threads (NumPy releases the GIL
  and its reductions are SIMD): the app runs from a PyInstaller bundle with no compiler,
  so bench/membw.c is not an option here. The KV cache's share of a token's reads is
  predicted from it;
* writes a *check model* per ggml tensor type: two StarCoder2 layers at the 3B's real
  width (3072 / 12288, so the matrices stress the caches exactly as a real model's do;
  a narrower probe measured 36 % off) whose matrices are random blocks of that type.
  No quantizer runs: llama.cpp's kernels cost the same whatever the values, and writing
  random blocks takes milliseconds where quantizing took seconds. Each is timed on a
  prompt batch and a few generated tokens; the two layers (~190 M weights, more than any
  CPU cache) make generation stream its weights from memory as a real model does.

A catalog quant is a *mix* of these types (``app.core.speed.QUANT_MIX``: a Q4_K_M file
is 77 % Q4_K and 23 % Q6_K weights), so the prediction weighs the per-type times.
The result is cached per machine (CPU model, core count, threads, llama.cpp version) in
a JSON file. The model dialog's "Check speed" button and ``starpad fit --recheck`` run it
again.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger("starpad.speed")

#: Bumped when the way the check measures changes: older cached results are ignored.
CHECK_VERSION = 2
#: The check model: two layers at the StarCoder2 3B's real width and head layout.
CHECK_N_EMBD = 3072
CHECK_N_FF = 12288
CHECK_N_HEAD = 24
CHECK_N_HEAD_KV = 2
CHECK_N_LAYER = 2
CHECK_N_VOCAB = 256
#: The ggml tensor types llama.cpp's quantization mixes are made of (app.core.speed.QUANT_MIX).
TIMED_TYPES = ("F16", "Q8_0", "Q6_K", "Q5_K", "Q5_0", "Q4_K", "Q4_0", "Q3_K", "Q2_K")
#: Prompt batch and generated tokens timed per type; the median of ROUNDS after a warm-up.
PROMPT_TOKENS = 128
GEN_TOKENS = 8
ROUNDS = 3
BANDWIDTH_MIB = 256
BANDWIDTH_PASSES = 24
ProgressFn = Callable[[str, float], None]


@dataclass(frozen=True)
class KernelRate:
    """What llama.cpp's kernels for one tensor type achieved on the check model.

    Rates are in weights × tokens per second: a model whose weights are all of this type
    runs at ``rate / weights`` tokens per second (``app.core.speed`` weighs the mix).
    ``gen_param_tps`` includes streaming the weights from memory, as a real model does.
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
def measure_bandwidth(threads: int, buffer_mib: int = BANDWIDTH_MIB, passes: int = BANDWIDTH_PASSES) -> float:
    """Read bandwidth in bytes/s: SIMD max-reductions over a buffer far larger than the
    caches, split over ``threads`` Python threads (NumPy releases the GIL). ``max`` rather
    than ``sum``: it needs no wide accumulators, so it stays memory-bound.

    A pass takes ~10 ms, so many are cheap; this host's passes spread ±15 % (other
    tenants, frequency), and the upper quartile is steadier than either the best pass or
    the median from one check to the next."""
    data = np.ones((buffer_mib << 20) // 4, dtype=np.float32)
    parts = np.array_split(data, max(1, threads))
    rates: list[float] = []
    for index in range(passes + 2):  # two warm-up passes fault the pages in
        workers = [threading.Thread(target=np.max, args=(part,)) for part in parts]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if index >= 2:
            rates.append(data.nbytes / (time.perf_counter() - started))
    rates.sort()
    return rates[(3 * len(rates)) // 4]


# ------------------------------------------------------------------ check model
def _check_tensors() -> list[tuple[str, tuple[int, ...]]]:
    """(name, numpy shape) of every tensor of the check model, as StarCoder2 lays them out."""
    e, f = CHECK_N_EMBD, CHECK_N_FF
    kv = (e // CHECK_N_HEAD) * CHECK_N_HEAD_KV
    specs: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (CHECK_N_VOCAB, e))]
    for i in range(CHECK_N_LAYER):
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


def _is_block_matrix(name: str, shape: tuple[int, ...]) -> bool:
    return len(shape) == 2 and name != "token_embd.weight"


def check_prompt_params() -> int:
    """Weights a prompt token of the check model is multiplied by.

    llama.cpp keeps only the rows whose logits are wanted after the last layer's
    attention, so that layer's FFN runs for one token, not the batch: counting it would
    overstate the kernels' rate by two thirds on a two-layer model (measured).
    """
    last_ffn = f"blk.{CHECK_N_LAYER - 1}.ffn_"
    return sum(int(np.prod(s)) for n, s in _check_tensors() if _is_block_matrix(n, s) and not n.startswith(last_ffn))


def check_gen_params() -> int:
    """Weights a generated token of the check model reads (every matrix, the output too)."""
    return sum(int(np.prod(s)) for _, s in _check_tensors() if len(s) == 2)


def write_check_model(path: Path, type_name: str, seed: int = 7) -> Path:
    """A StarCoder2-architecture GGUF whose block matrices are random ``type_name`` blocks.

    Random bytes below 0x3C keep every embedded f16 scale finite (exponent < 15), so no
    kernel meets a NaN or an infinity; the values mean nothing, the layout is exact.
    """
    import gguf

    logging.getLogger("gguf").setLevel(logging.WARNING)  # its writer logs every file at INFO
    qtype = gguf.GGMLQuantizationType[type_name]
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(seed)
    largest = max(int(np.prod(s)) for _, s in _check_tensors() if len(s) == 2)
    pool = rng.integers(0, 0x3C, size=largest * type_size // block + 1, dtype=np.uint8)
    writer = gguf.GGUFWriter(str(path), arch="starcoder2")
    writer.add_name("Starpad machine check (random weights)")
    writer.add_context_length(4096)
    writer.add_embedding_length(CHECK_N_EMBD)
    writer.add_block_count(CHECK_N_LAYER)
    writer.add_feed_forward_length(CHECK_N_FF)
    writer.add_head_count(CHECK_N_HEAD)
    writer.add_head_count_kv(CHECK_N_HEAD_KV)
    writer.add_layer_norm_eps(1e-5)
    writer.add_rope_freq_base(1e6)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([f"<{i:02x}>" for i in range(CHECK_N_VOCAB)])
    writer.add_token_types([gguf.TokenType.NORMAL] * CHECK_N_VOCAB)
    writer.add_token_merges(["<0 0>"])  # llama.cpp requires the key; the merge is never used
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    for name, shape in _check_tensors():
        if len(shape) == 1:
            value = 1.0 if name.endswith("norm.weight") else 0.0
            writer.add_tensor(name, np.full(shape, value, dtype=np.float32))
        elif not _is_block_matrix(name, shape):
            writer.add_tensor(name, (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16))
        else:
            rows, cols = shape
            row_bytes = cols // block * type_size
            raw = pool[: rows * row_bytes].reshape(rows, row_bytes)
            if qtype == gguf.GGMLQuantizationType.F16:
                writer.add_tensor(name, raw.view(np.float16))
            else:
                writer.add_tensor(name, raw, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


class TimedModel:
    """One check model loaded with its context, timed one round at a time.

    Drives llama.cpp's low-level API directly: the engine's prompt building and FIM
    handling have nothing to time on a model with a byte vocabulary.
    """

    def __init__(self, path: Path, threads: int, prompt_tokens: int = PROMPT_TOKENS,
                 gen_tokens: int = GEN_TOKENS) -> None:
        import llama_cpp
        from llama_cpp import _internals

        from app.core import llama_runtime

        llama_runtime.ensure_initialised()
        self._prompt_tokens, self._gen_tokens = prompt_tokens, gen_tokens
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = 0
        mparams.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
        self._model = _internals.LlamaModel(path_model=str(path), params=mparams, verbose=False)
        try:
            cparams = llama_cpp.llama_context_default_params()
            cparams.n_ctx = 512
            cparams.n_batch = cparams.n_ubatch = max(prompt_tokens, 1)
            cparams.n_threads = cparams.n_threads_batch = threads
            cparams.no_perf = True
            self._ctx = _internals.LlamaContext(model=self._model, params=cparams, verbose=False)
            self._batch = _internals.LlamaBatch(n_tokens=max(prompt_tokens, 1), embd=0, n_seq_max=1,
                                                verbose=False)
        except Exception:
            self._model.close()
            raise

    def run_round(self) -> tuple[float, float]:
        """(seconds for one prompt batch, seconds per generated token) from an empty cache."""
        import llama_cpp

        ctx, batch = self._ctx.ctx, self._batch
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        batch.set_batch([(7 * i + 3) % CHECK_N_VOCAB for i in range(self._prompt_tokens)], n_past=0,
                        logits_all=False)
        started = time.perf_counter()
        if llama_cpp.llama_decode(ctx, batch.batch) != 0:
            raise RuntimeError("llama_decode failed on the check model")
        prompt_s = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(self._gen_tokens):
            batch.set_batch([(5 * i + 1) % CHECK_N_VOCAB], n_past=self._prompt_tokens + i, logits_all=False)
            if llama_cpp.llama_decode(ctx, batch.batch) != 0:
                raise RuntimeError("llama_decode failed on the check model")
        return prompt_s, (time.perf_counter() - started) / max(self._gen_tokens, 1)

    def close(self) -> None:
        self._batch.close()
        self._ctx.close()
        self._model.close()


def measure_kernels(types: list[str], threads: int, folder: Path, progress: ProgressFn | None = None,
                    rounds: int = ROUNDS) -> dict[str, KernelRate]:
    """Time the check model at each ggml tensor type; a type this llama.cpp cannot load is left out.

    Every type is loaded first, then the rounds go round-robin over the types: a burst of
    other work on the machine then spoils one round of several types, which the median
    drops, instead of every round of one type (measured: a type's rate moved 40 % between
    two sequential checks on this host; see bench/results/speed-predictions.json).
    """
    prompt_params, gen_params = check_prompt_params(), check_gen_params()
    timed: dict[str, TimedModel] = {}
    times: dict[str, list[tuple[float, float]]] = {}
    try:
        for index, type_name in enumerate(types):
            if progress is not None:
                progress(f"preparing {type_name}", 0.3 * index / len(types))
            path = folder / f"check-{type_name}.gguf"
            try:
                write_check_model(path, type_name)
                timed[type_name] = TimedModel(path, threads)
                timed[type_name].run_round()  # warm-up: allocations, weight repacking
            except (RuntimeError, ValueError, KeyError, OSError) as exc:
                log.warning("machine check skipped %s: %s", type_name, exc)
            finally:
                path.unlink(missing_ok=True)  # loaded without mmap: the file is no longer needed
        for round_index in range(rounds):
            for index, (type_name, model) in enumerate(timed.items()):
                if progress is not None:
                    done = (round_index * len(timed) + index) / (rounds * max(len(timed), 1))
                    progress(f"timing {type_name}", 0.3 + 0.7 * done)
                times.setdefault(type_name, []).append(model.run_round())
    finally:
        for model in timed.values():
            model.close()
    rates: dict[str, KernelRate] = {}
    for type_name, samples in times.items():
        prompt_s = statistics.median(t[0] for t in samples)
        gen_s = statistics.median(t[1] for t in samples)
        rates[type_name] = KernelRate(prompt_params * PROMPT_TOKENS / prompt_s, gen_params / gen_s)
        log.info("machine check %s: prompt %.1f Gweight-tok/s, gen %.1f Gweight/s",
                 type_name, rates[type_name].prompt_param_tps / 1e9, rates[type_name].gen_param_tps / 1e9)
    return rates


def run_machine_check(threads: int, types: tuple[str, ...] = TIMED_TYPES, progress: ProgressFn | None = None,
                      cache: Path | None = None, save: bool = True) -> MachineSpeed:
    """Measure this machine now (about 10-20 s), cache the result and return it."""
    started = time.perf_counter()
    if progress is not None:
        progress("measuring memory bandwidth", 0.0)
    bandwidth = measure_bandwidth(threads)
    with tempfile.TemporaryDirectory(prefix="starpad-check-") as tmp:
        kernels = measure_kernels(list(types), threads, Path(tmp), progress)
    speed = MachineSpeed(
        bandwidth_bytes_per_s=bandwidth, threads=threads, kernels=kernels, cpu=cpu_name(),
        cores=os.cpu_count() or 1, llama_cpp_version=llama_cpp_version(), measured_at=time.time(),
        seconds=time.perf_counter() - started,
    )
    if save:
        save_cached(speed, cache)
    if progress is not None:
        progress("done", 1.0)
    log.info("machine check: %.1f GB/s, %d tensor types, %.1f s", bandwidth / 1e9, len(kernels), speed.seconds)
    return speed
