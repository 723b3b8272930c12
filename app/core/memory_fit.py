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
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field

import psutil

from app.core.catalog import QUALITY_ORDER, ArchShape, CatalogEntry

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

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.compute_bytes + self.overhead_bytes

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
) -> Estimate:
    if use_mmap:
        weights = int(file_bytes * (1 + REPACK_FRACTION))
        reclaimable = file_bytes
    else:
        weights, reclaimable = file_bytes, 0
    # Activations for one batch (logits are kept for one token only): ~25 MB for 3B.
    compute = shape.n_embd * N_BATCH * 4 * 4
    return Estimate(weights, reclaimable, shape.kv_bytes_per_token() * n_ctx, compute, overhead_bytes)


def verdict(need: Estimate, memory: MemoryInfo) -> str:
    """fits | tight | too_large, judged on what must stay resident against available RAM."""
    required = need.required_bytes
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

    def to_json(self) -> dict[str, object]:
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
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class FitReport:
    memory: MemoryInfo
    n_ctx: int
    rows: tuple[FitRow, ...]
    recommended: CatalogEntry | None = field(default=None)

    def to_json(self) -> dict[str, object]:
        return {
            "ram_total_bytes": self.memory.total_bytes,
            "ram_available_bytes": self.memory.available_bytes,
            "gpus": [asdict(g) for g in self.memory.gpus],
            "unified_memory": self.memory.unified,
            "n_ctx": self.n_ctx,
            "quants": [row.to_json() for row in self.rows],
            "recommended": self.recommended.key if self.recommended else None,
        }


def fit_report(entries: list[CatalogEntry], memory: MemoryInfo, n_ctx: int, use_mmap: bool = False) -> FitReport:
    rows = tuple(
        FitRow(e, need, verdict(need, memory))
        for e in entries
        for need in [estimate(e.size_bytes, e.shape, n_ctx, use_mmap)]
    )
    return FitReport(memory, n_ctx, rows, recommend(rows))


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

