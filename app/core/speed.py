"""Predicted speed per catalog row, from this machine's check (``app.core.machine_check``).

Two regimes, two formulas:

* **generation** reads every weight once per token (plus the KV cache up to the current
  context), so it is bounded by memory bandwidth: ``efficiency × bandwidth ÷ bytes``.
  The efficiency is what llama.cpp reaches of the bound measured here (0.87 of
  bench/membw.c for the 3B Q4_K_M on this 2-core EPYC; NumPy's read measures a little
  lower than membw.c, hence ``GEN_EFFICIENCY``). The mini model's per-token rate is
  recorded too (``compute_bound_gen_tps``) but not used as a cap: one decode of a
  21 M-parameter model is short enough that scheduling noise on a busy machine swamps
  it (measured: it predicted 0.1 tok/s for a model that runs at 10). bench/speed_check.py
  reports both, so the cap can be turned on where the data says it holds.
* **prompt processing** multiplies a batch of tokens by every matrix: compute-bound, at
  the rate the quant type's kernels reached on the mini model, scaled by the number of
  parameters the prompt multiplies (the tied embedding/output matrix is only looked up
  for prompt tokens: logits are computed for the last token alone).

The usability target (``SpeedTarget``) says what "usable" means for completion while
typing; the recommendation in ``app.core.memory_fit`` prefers quants that meet it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.core.catalog import QUALITY_ORDER, ArchShape, CatalogEntry
from app.core.machine_check import KernelRate, MachineSpeed

log = logging.getLogger("starpad.speed")

#: Share of the measured (NumPy) read bandwidth that llama.cpp's generation reaches.
GEN_EFFICIENCY = 0.95
#: The prompt size the target and the table speak of.
PROMPT_TOKENS = 1024
#: Mixes that are not measured use their nearest measured sibling's kernels.
_KERNEL_FALLBACK: dict[str, tuple[str, ...]] = {
    "Q3_K_S": ("Q3_K_M",), "Q3_K_L": ("Q3_K_M",), "Q4_K_S": ("Q4_K_M",), "Q5_K_S": ("Q5_K_M",),
    "Q5_0": ("Q4_0", "Q5_K_M"), "Q4_0": ("Q5_0", "Q4_K_M"),
}
#: The quants the machine check times: one per kernel family of the catalog.
CHECKED_QUANTS = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")


@dataclass(frozen=True)
class SpeedTarget:
    """What counts as usable: both must hold (editable in the preferences)."""

    min_gen_tps: float = 8.0
    max_prompt_seconds: float = 30.0
    prompt_tokens: int = PROMPT_TOKENS


@dataclass(frozen=True)
class SpeedPrediction:
    gen_tps: float
    prompt_tps: float
    #: Which bound decided generation: "memory" or "compute".
    gen_bound: str
    #: False when the quant's kernels were not measured and a sibling's stood in.
    kernel_measured: bool = True

    def prompt_seconds(self, tokens: int = PROMPT_TOKENS) -> float:
        return tokens / self.prompt_tps if self.prompt_tps > 0 else float("inf")

    def meets(self, target: SpeedTarget) -> bool:
        fast_prompt = self.prompt_seconds(target.prompt_tokens) <= target.max_prompt_seconds
        return self.gen_tps >= target.min_gen_tps and fast_prompt

    def summary(self, tokens: int = PROMPT_TOKENS) -> str:
        """"≈ 9 tok/s · 1K-token prompt ≈ 40 s", as the model table shows it."""
        size = f"{tokens // 1024}K" if tokens % 1024 == 0 else f"{tokens:,}"
        seconds = format_seconds(self.prompt_seconds(tokens))
        return f"≈ {format_tps(self.gen_tps)} tok/s · {size}-token prompt ≈ {seconds}"


def format_tps(tps: float) -> str:
    return f"{tps:.1f}" if tps < 10 else f"{tps:.0f}"


def format_seconds(seconds: float) -> str:
    if seconds == float("inf"):
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def prompt_params(shape: ArchShape) -> int:
    """Parameters a prompt token is multiplied by: all but the (tied) embedding matrix."""
    return shape.n_params - shape.n_vocab * shape.n_embd


def kernel_for(quant: str, speed: MachineSpeed) -> tuple[KernelRate | None, bool]:
    """The measured kernel rate for ``quant``, else a sibling's (measured=False), else None."""
    if quant in speed.kernels:
        return speed.kernels[quant], True
    for sibling in _KERNEL_FALLBACK.get(quant, ()):
        if sibling in speed.kernels:
            return speed.kernels[sibling], False
    if not speed.kernels:
        return None, False
    # Nearest in the quality order: kernels of neighbouring bit widths cost alike.
    index = QUALITY_ORDER.index(quant) if quant in QUALITY_ORDER else 0
    nearest = min(speed.kernels, key=lambda q: abs((QUALITY_ORDER.index(q) if q in QUALITY_ORDER else 0) - index))
    return speed.kernels[nearest], False


def predict(
    file_bytes: int,
    shape: ArchShape,
    quant: str,
    speed: MachineSpeed,
    n_ctx: int = PROMPT_TOKENS,
    gpu_fraction: float = 0.0,
    gpu_speedup: float = 1.0,
) -> SpeedPrediction:
    """Generation and prompt tokens/s for one model file on the measured machine.

    ``n_ctx`` is the context the generation happens at (its KV cache is read per token).
    ``gpu_fraction`` of the layers offloaded run ``gpu_speedup`` times faster (a rough
    what-if: a GPU's numbers are not measured by the CPU check).
    """
    bytes_per_token = file_bytes + shape.kv_bytes_per_token() * n_ctx
    t_token = bytes_per_token / (GEN_EFFICIENCY * speed.bandwidth_bytes_per_s)
    kernel, measured = kernel_for(quant, speed)
    gen_bound = "memory"
    prompt_tps = kernel.prompt_param_tps / prompt_params(shape) if kernel else 0.0
    if gpu_fraction > 0:
        cpu_share = 1.0 - gpu_fraction
        t_token = t_token * (cpu_share + gpu_fraction / gpu_speedup)
        if prompt_tps > 0:
            prompt_tps = 1.0 / ((1.0 / prompt_tps) * (cpu_share + gpu_fraction / gpu_speedup))
    return SpeedPrediction(1.0 / t_token, prompt_tps, gen_bound, measured)


def compute_bound_gen_tps(shape: ArchShape, quant: str, speed: MachineSpeed) -> float | None:
    """Generation tokens/s if the quant's kernels (not the memory) were the limit."""
    kernel, _ = kernel_for(quant, speed)
    return kernel.gen_param_tps / shape.n_params if kernel and kernel.gen_param_tps > 0 else None


def predict_entry(entry: CatalogEntry, speed: MachineSpeed, n_ctx: int = PROMPT_TOKENS) -> SpeedPrediction:
    return predict(entry.size_bytes, entry.shape, entry.quant, speed, n_ctx)
