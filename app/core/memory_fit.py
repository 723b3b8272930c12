"""Will this quant fit? Detect memory, estimate a model's footprint, give a verdict.

The estimate follows how llama.cpp actually uses memory on a CPU (calibrated on the
generated StarCoder2-3B-shaped Q4_K_M, see bench/memory_calibration.py):

* weights: without mmap (Starpad's default) they are read once into anonymous memory,
  repacked in place. With mmap the file's pages stay resident as page cache the OS may
  reclaim, *and* llama.cpp repacks most quantized tensors into anonymous memory for its
  CPU kernels, so the weights are held about 1.7 times. Measured on the 1.89 GB
  3B-shaped Q4_K_M (x86-64, AVX2): mmap 3.38 GB RSS at 4K / 3.76 GB at 16K, load 2.5 s;
  no mmap 2.10 GB at 4K / 2.48 GB at 16K, load 3.4-5.1 s. 1.3 GB for ~2-3 s: no mmap.
  The estimate is within 1 % of measured RSS in all four (bench/results/memory-calibration.json).
* KV cache: n_layer × n_ctx × n_head_kv × head_dim × 2 (K and V) × 2 bytes (F16).
* compute buffers: logits for a batch plus activations, and the process's own runtime.

With layers offloaded to a GPU (``app.core.offload``) their weights and KV cache move
from RAM to the GPU's memory: the estimate splits them, and the verdict judges each part
against its own memory.

Each row also carries a speed prediction (``app.core.speed``) when the machine check's
numbers are given, and the recommendation is the best quality that both fits and is
usable at that speed (``SpeedTarget``), with the reason in words.
"""

from __future__ import annotations

from pathlib import Path

import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field

import psutil

from app.core.catalog import QUALITY_ORDER, ArchShape, CatalogEntry
from app.core.machine_check import MachineSpeed
from app.core.model_info import ModelInfo
from app.core.offload import GpuDevice, OffloadPlan, gpu_backend_available, plan_offload
from app.core.speed import PROMPT_TOKENS, SpeedPrediction, SpeedTarget, format_tps, predict

#: Share of the file llama.cpp repacks into anonymous memory in mmap mode (measured 0.69
#: for Q4_K_M: its Q4_K tensors are repacked, the Q6_K ones are used in place).
REPACK_FRACTION = 0.69
#: The window's own footprint before any model: Python, Qt, llama.cpp's libraries
#: (the CLI alone is ~50 MB; callers that know their baseline pass it).
RUNTIME_OVERHEAD_BYTES = 200_000_000
N_BATCH = 512
#: "tight" when the need is above this share of available memory, "too large" above 100 %.
TIGHT_SHARE = 0.80


@dataclass(frozen=True)
class GpuMemory:
    name: str
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class MemoryInfo:
    total_bytes: int
    available_bytes: int
    gpus: tuple[GpuMemory, ...] = ()
    unified: bool = False  # Apple silicon: the GPU shares RAM

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def gpu_devices(self) -> tuple[GpuDevice, ...]:
        return tuple(GpuDevice(g.name, g.free_bytes, g.total_bytes) for g in self.gpus)


def _nvidia_gpus() -> tuple[GpuMemory, ...]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ()
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    gpus = []
    for line in out.strip().splitlines():
        try:
            name, total, free = (part.strip() for part in line.split(","))
            gpus.append(GpuMemory(name, int(float(total)) * 2**20, int(float(free)) * 2**20))
        except ValueError:
            continue
    return tuple(gpus)


def detect_memory() -> MemoryInfo:
    vm = psutil.virtual_memory()
    unified = platform.system() == "Darwin" and platform.machine() == "arm64"
    return MemoryInfo(vm.total, vm.available, _nvidia_gpus(), unified)


@dataclass(frozen=True)
class Estimate:
    weights_bytes: int  # resident weights, all of them
    reclaimable_bytes: int  # of which mmapped file pages the OS may drop under pressure
    kv_bytes: int
    compute_bytes: int
    overhead_bytes: int
    #: Of the weights and KV cache above, what sits in the GPU's memory instead of RAM.
    gpu_weights_bytes: int = 0
    gpu_kv_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        """RAM: everything not offloaded."""
        return (self.weights_bytes - self.gpu_weights_bytes + self.kv_bytes - self.gpu_kv_bytes
                + self.compute_bytes + self.overhead_bytes)

    @property
    def gpu_bytes(self) -> int:
        return self.gpu_weights_bytes + self.gpu_kv_bytes

    @property
    def required_bytes(self) -> int:
        """What must really be free: the reclaimable page cache can be dropped."""
        return self.total_bytes - self.reclaimable_bytes


def estimate(
    file_bytes: int,
    shape: ArchShape,
    n_ctx: int,
    use_mmap: bool = False,
    overhead_bytes: int = RUNTIME_OVERHEAD_BYTES,
    offload: OffloadPlan | None = None,
) -> Estimate:
    if use_mmap:
        weights = int(file_bytes * (1 + REPACK_FRACTION))
        reclaimable = file_bytes
    else:
        weights, reclaimable = file_bytes, 0
    # Activations for one batch (logits are kept for one token only): ~25 MB for 3B.
    compute = shape.n_embd * N_BATCH * 4 * 4
    gpu_w = min(offload.gpu_weights_bytes, weights) if offload and offload.on_gpu else 0
    kv = shape.kv_bytes_per_token() * n_ctx
    gpu_kv = min(offload.gpu_kv_bytes, kv) if offload and offload.on_gpu else 0
    return Estimate(weights, reclaimable, kv, compute, overhead_bytes, gpu_w, gpu_kv)


def verdict(need: Estimate, memory: MemoryInfo) -> str:
    """fits | tight | too_large, judged on what must stay resident against available RAM
    (and what is offloaded against the GPU's free memory)."""
    required = need.required_bytes
    gpu_free = max((g.free_bytes for g in memory.gpus), default=0)
    if need.gpu_bytes > gpu_free and not memory.unified:
        return "too_large"
    if required > memory.available_bytes:
        return "too_large"
    if need.total_bytes > memory.available_bytes * TIGHT_SHARE:
        return "tight"
    return "fits"


@dataclass(frozen=True)
class FitRow:
    entry: CatalogEntry
    need: Estimate
    verdict: str
    speed: SpeedPrediction | None = None
    meets_target: bool | None = None  # None: no machine check to judge by
    offload: OffloadPlan | None = None

    def to_json(self) -> dict[str, object]:
        speed = self.speed
        return {
            "family": self.entry.family,
            "repo": self.entry.repo_id,
            "file": self.entry.filename,
            "quant": self.entry.quant,
            "file_bytes": self.entry.size_bytes,
            "need_bytes": self.need.total_bytes,
            "required_bytes": self.need.required_bytes,
            "reclaimable_bytes": self.need.reclaimable_bytes,
            "kv_bytes": self.need.kv_bytes,
            "gpu_bytes": self.need.gpu_bytes,
            "n_gpu_layers": self.offload.n_gpu_layers if self.offload else 0,
            "runs_on": self.offload.placement() if self.offload else "CPU",
            "verdict": self.verdict,
            "predicted_gen_tps": round(speed.gen_tps, 2) if speed else None,
            "predicted_prompt_tps": round(speed.prompt_tps, 2) if speed else None,
            "predicted_prompt_seconds": round(speed.prompt_seconds(PROMPT_TOKENS), 1) if speed else None,
            "meets_speed_target": self.meets_target,
        }


@dataclass(frozen=True)
class FitReport:
    memory: MemoryInfo
    n_ctx: int
    rows: tuple[FitRow, ...]
    recommended: CatalogEntry | None = field(default=None)
    #: Why this one, in words (what was passed over and why, or what to expect).
    reason: str = ""
    target: SpeedTarget = field(default_factory=SpeedTarget)
    machine: MachineSpeed | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "ram_total_bytes": self.memory.total_bytes,
            "ram_available_bytes": self.memory.available_bytes,
            "gpus": [asdict(g) for g in self.memory.gpus],
            "unified_memory": self.memory.unified,
            "n_ctx": self.n_ctx,
            "quants": [row.to_json() for row in self.rows],
            "recommended": self.recommended.key if self.recommended else None,
            "recommendation_reason": self.reason,
            "speed_target": {"min_gen_tps": self.target.min_gen_tps,
                             "max_prompt_seconds": self.target.max_prompt_seconds,
                             "prompt_tokens": self.target.prompt_tokens},
            "machine_check": None if self.machine is None else {
                "bandwidth_bytes_per_s": round(self.machine.bandwidth_bytes_per_s),
                "threads": self.machine.threads, "cpu": self.machine.cpu,
                "measured_at": self.machine.measured_at,
            },
        }


#: A GPU's speed is not measured by the CPU check: offloaded layers are assumed this many
#: times faster (a modest guess for a discrete GPU against two CPU cores), so offloading
#: raises the prediction without pretending to know by how much exactly.
GPU_SPEEDUP_GUESS = 5.0


def fit_report(
    entries: list[CatalogEntry],
    memory: MemoryInfo,
    n_ctx: int,
    use_mmap: bool = False,
    *,
    speed: MachineSpeed | None = None,
    target: SpeedTarget | None = None,
    n_gpu_layers: int = 0,
    gpu_backend: bool | None = None,
) -> FitReport:
    """Memory verdicts for every entry, speed predictions when ``speed`` is given, and the
    recommendation. ``n_gpu_layers`` is the GPU-layers setting (``offload.AUTO``, 0, N, ALL)."""
    target = target or SpeedTarget()
    backend = gpu_backend_available() if gpu_backend is None and n_gpu_layers != 0 else bool(gpu_backend)
    rows = []
    for e in entries:
        plan = plan_offload(n_gpu_layers, e.size_bytes, e.shape, n_ctx, memory.gpu_devices(), backend)
        need = estimate(e.size_bytes, e.shape, n_ctx, use_mmap, offload=plan)
        prediction = None
        if speed is not None:
            prediction = predict(e.size_bytes, e.shape, e.quant, speed, min(n_ctx, target.prompt_tokens),
                                 gpu_fraction=plan.gpu_fraction, gpu_speedup=GPU_SPEEDUP_GUESS)
        meets = prediction.meets(target) if prediction else None
        rows.append(FitRow(e, need, verdict(need, memory), prediction, meets, plan))
    frozen = tuple(rows)
    chosen, reason = recommend_with_reason(frozen, target)
    return FitReport(memory, n_ctx, frozen, chosen, reason, target, speed)


def _label(row: FitRow) -> str:
    return f"{row.entry.family.removeprefix('StarCoder2 ')} {row.entry.quant}"


def _expectation(row: FitRow, target: SpeedTarget) -> str:
    assert row.speed is not None
    return (f"≈ {format_tps(row.speed.gen_tps)} tok/s, a {target.prompt_tokens:,}-token prompt in "
            f"≈ {row.speed.prompt_seconds(target.prompt_tokens):.0f} s")


def _why_slow(row: FitRow, target: SpeedTarget) -> str:
    assert row.speed is not None
    if row.speed.gen_tps < target.min_gen_tps:
        return f"{_label(row)} fits, but would generate ≈ {format_tps(row.speed.gen_tps)} tok/s here"
    return (f"{_label(row)} fits, but would take ≈ {row.speed.prompt_seconds(target.prompt_tokens):.0f} s "
            f"over a {target.prompt_tokens:,}-token prompt here")


def recommend_with_reason(
    rows: tuple[FitRow, ...], target: SpeedTarget | None = None
) -> tuple[CatalogEntry | None, str]:
    """The recommendation and why.

    Without speed predictions: the memory-only choice (``recommend``). With them: among
    the quants that fit, the one ``recommend`` would pick from those that also meet the
    target; if none does, the fastest that fits, saying plainly what to expect. The
    reason names the better-quality quants passed over for speed.
    """
    target = target or SpeedTarget()
    memory_pick = recommend(rows)
    if memory_pick is None:
        return None, "Nothing fits comfortably in the available memory at this context; try a smaller context."
    if any(r.speed is None for r in rows):
        return memory_pick, "The largest model at the best quant that fits comfortably (speed not checked)."
    fitting = [r for r in rows if r.verdict == "fits" and r.entry.quant != "F16"]
    usable = tuple(r for r in fitting if r.meets_target)
    pick = recommend(usable) if usable else None
    if pick is not None:
        pick_row = next(r for r in usable if r.entry == pick)
        better = [r for r in fitting if not r.meets_target and _rank(r) > _rank(pick_row)]
        better.sort(key=_rank, reverse=True)
        passed = "; ".join(_why_slow(r, target) for r in better[:2])
        reason = (f"{_label(pick_row)}: the best quality that fits and is usable here "
                  f"({_expectation(pick_row, target)}).")
        return pick, reason + (f" Passed over: {passed}." if passed else "")
    fastest = max(fitting, key=lambda r: (r.speed.gen_tps if r.speed else 0.0, -r.entry.shape.n_params))
    return fastest.entry, (
        f"No quant that fits meets the target ({target.min_gen_tps:g} tok/s, a {target.prompt_tokens:,}-token "
        f"prompt in {target.max_prompt_seconds:g} s) on this machine. The fastest that fits is "
        f"{_label(fastest)}: expect {_expectation(fastest, target)}."
    )


def _rank(row: FitRow) -> tuple[int, int]:
    """Bigger model first, then better quant: the order ``recommend`` prefers."""
    return row.entry.shape.n_params, -QUALITY_ORDER.index(row.entry.quant)


def recommend(rows: tuple[FitRow, ...]) -> CatalogEntry | None:
    """The largest model, at the best quant, that fits comfortably.

    A bigger model at Q4 beats a smaller one at Q8 for code, but below Q4_K_S quality
    drops fast, so Q2/Q3 are chosen only when nothing better fits. F16 is never
    recommended: Q8_0 is indistinguishable at half the memory.
    """
    fitting = [r for r in rows if r.verdict == "fits" and r.entry.quant != "F16"]
    floor = QUALITY_ORDER.index("Q4_K_S")
    good = [r for r in fitting if QUALITY_ORDER.index(r.entry.quant) <= floor] or fitting
    if not good:
        return None
    return max(good, key=lambda r: (r.entry.shape.n_params, -QUALITY_ORDER.index(r.entry.quant))).entry



def shape_of(info: ModelInfo) -> ArchShape:
    """The estimate's view of a loaded or inspected model file."""
    return ArchShape(n_params=max(1, info.n_params), n_layer=max(1, info.n_layer), n_embd=max(1, info.n_embd),
                     n_head=max(1, info.n_head), n_head_kv=max(1, info.n_head_kv), n_vocab=info.n_vocab,
                     n_ctx_train=info.n_ctx_train)


def gpu_layers_for(requested: int, model: Path, n_ctx: int) -> int:
    """llama.cpp's ``n_gpu_layers`` for one model file and a GPU-layers choice (auto, all, N):
    what the comparison and the evaluation load each quant with, as ``complete`` does."""
    if requested == 0:
        return 0
    from app.core.model_info import model_info

    plan = offload_for_model(requested, model_info(model), n_ctx)
    return plan.n_gpu_layers if plan.on_gpu else 0


def offload_for_model(
    requested: int,
    info: ModelInfo,
    n_ctx: int,
    memory: MemoryInfo | None = None,
    gpu_backend: bool | None = None,
) -> OffloadPlan:
    """The GPU-layers setting turned into llama.cpp's ``n_gpu_layers`` for one model file:
    AUTO looks at the GPUs' free memory now (``detect_memory``) and this llama.cpp's backends."""
    if requested == 0:
        return plan_offload(0, info.size_bytes, shape_of(info), n_ctx, (), False)
    memory = memory or detect_memory()
    backend = gpu_backend_available() if gpu_backend is None else gpu_backend
    return plan_offload(requested, info.size_bytes, shape_of(info), n_ctx, memory.gpu_devices(), backend)
