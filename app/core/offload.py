"""How many layers go to the GPU: the "GPU layers" setting turned into llama.cpp's ``n_gpu_layers``.

The setting is one integer, as stored: ``AUTO`` (-1) lets Starpad decide, 0 keeps
everything on the CPU, ``ALL`` (999, what llama.cpp itself uses for "every layer") or
any count up to it. ``auto`` offloads as many transformer layers as the estimate says
fit in the GPU's *free* memory (weights and KV cache of each layer, after a reserve for
llama.cpp's compute buffers), and nothing when llama.cpp was built without a GPU
backend or no GPU is seen: a CPU build ignores ``n_gpu_layers``, and the status bar must
not claim a GPU that does nothing.

Pure functions of (model shape, file size, context, device inventory), so the decision
is tested with fake inventories on machines that have no GPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.core.catalog import ArchShape

log = logging.getLogger("starpad.offload")

AUTO = -1
ALL = 999
#: Left free on the GPU for llama.cpp's compute buffers and the driver (CUDA context
#: alone is ~300 MB).
GPU_RESERVE_BYTES = 600_000_000
#: And a share of the free memory: other programs grow too.
GPU_RESERVE_SHARE = 0.05


def parse_gpu_layers(text: str) -> int:
    """``auto`` | ``all`` | a count 0..999 → the stored integer; ``ValueError`` says what is allowed."""
    value = text.strip().lower()
    if value == "auto":
        return AUTO
    if value == "all":
        return ALL
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"must be auto, all or a number of layers from 0 to {ALL}, not {text!r}") from None
    if not 0 <= count <= ALL:
        raise ValueError(f"must be auto, all or a number of layers from 0 to {ALL}, not {text!r}")
    return count


def describe_gpu_layers(value: int) -> str:
    return "auto" if value == AUTO else "all" if value >= ALL else str(value)


@dataclass(frozen=True)
class GpuDevice:
    """One GPU as the inventory reports it (nvidia-smi, or what llama.cpp lists)."""

    name: str
    free_bytes: int
    total_bytes: int = 0


@dataclass(frozen=True)
class OffloadPlan:
    """What will run where. ``n_gpu_layers`` goes to llama.cpp as is."""

    n_gpu_layers: int
    n_layer: int
    device: str | None
    gpu_weights_bytes: int = 0
    gpu_kv_bytes: int = 0
    reason: str = ""

    @property
    def on_gpu(self) -> bool:
        return self.n_gpu_layers > 0 and self.device is not None

    @property
    def offloaded_layers(self) -> int:
        """Transformer layers on the GPU (llama.cpp counts the output layer as one more)."""
        return min(self.n_gpu_layers, self.n_layer) if self.on_gpu else 0

    @property
    def gpu_fraction(self) -> float:
        return self.offloaded_layers / self.n_layer if self.n_layer else 0.0

    def placement(self) -> str:
        """"CPU" or "GPU 28/30 layers", as the status bar shows it."""
        if not self.on_gpu:
            return "CPU"
        return f"GPU {self.offloaded_layers}/{self.n_layer} layers"


def layer_bytes(file_bytes: int, shape: ArchShape, n_ctx: int) -> tuple[int, int]:
    """(weights, KV cache) of one transformer layer: the file less its embedding matrix,
    shared evenly (StarCoder2's layers are all alike)."""
    embd = int(file_bytes * shape.n_vocab * shape.n_embd / shape.n_params)
    weights = max(0, file_bytes - embd) // max(1, shape.n_layer)
    kv = shape.kv_bytes_per_token() * n_ctx // max(1, shape.n_layer)
    return weights, kv


def plan_offload(
    requested: int,
    file_bytes: int,
    shape: ArchShape,
    n_ctx: int,
    gpus: tuple[GpuDevice, ...],
    gpu_backend: bool,
) -> OffloadPlan:
    """Decide ``n_gpu_layers`` for the setting ``requested`` (AUTO, 0, N or ALL).

    An explicit count is honoured (capped at the model's layers + output) even when the
    estimate says it will not fit: the user asked, llama.cpp reports if it fails. AUTO
    fills the first GPU's free memory layer by layer.
    """
    n_layer = shape.n_layer
    per_weights, per_kv = layer_bytes(file_bytes, shape, n_ctx)
    if requested == 0:
        return OffloadPlan(0, n_layer, None, reason="GPU layers set to 0")
    if not gpu_backend:
        return OffloadPlan(0, n_layer, None, reason="this llama.cpp was built without a GPU backend")
    if not gpus:
        return OffloadPlan(0, n_layer, None, reason="no GPU found")
    gpu = max(gpus, key=lambda g: g.free_bytes)
    if requested == AUTO:
        usable = gpu.free_bytes * (1 - GPU_RESERVE_SHARE) - GPU_RESERVE_BYTES
        per_layer = per_weights + per_kv
        count = int(max(0.0, usable) // per_layer) if per_layer else n_layer
        count = min(count, n_layer)
        embd = file_bytes - per_weights * n_layer
        if count == n_layer and usable - per_layer * n_layer >= embd:
            count = n_layer + 1  # the output matrix too
        if count == 0:
            return OffloadPlan(0, n_layer, None, reason=f"{gpu.name}: not enough free memory for one layer")
        reason = f"auto: {min(count, n_layer)} of {n_layer} layers fit in {gpu.name}'s free memory"
    else:
        count = min(requested, n_layer + 1)
        reason = f"GPU layers set to {describe_gpu_layers(requested)}"
    layers = min(count, n_layer)
    plan = OffloadPlan(count, n_layer, gpu.name, per_weights * layers + (file_bytes - per_weights * n_layer
                                                                       if count > n_layer else 0),
                       per_kv * layers, reason)
    log.info("offload: %s (%s)", plan.placement(), reason)
    return plan


def gpu_backend_available() -> bool:
    """Whether this llama.cpp can offload at all (CUDA, Vulkan, Metal… builds)."""
    try:
        import llama_cpp

        return bool(llama_cpp.llama_supports_gpu_offload())
    except (ImportError, AttributeError, OSError):
        return False
