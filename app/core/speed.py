"""Predicted speed per catalog row, from this machine's check (``app.core.machine_check``).

The check times each ggml tensor type on two real-width StarCoder2 layers; a catalog
quant is a mix of those types (``QUANT_MIX``, what llama.cpp's quantizer gives
StarCoder2: a Q4_K_M file is 77 % Q4_K and 23 % Q6_K by weights). So:

* **generation**: every weight is streamed from memory and multiplied once per token.
  The check model's layers are far larger than any cache, so its per-weight time per
  type already holds both the memory and the unpacking cost; a token of a real model
  costs the mix-weighted sum over its weights, plus reading the KV cache up to the
  current context at the measured bandwidth. (A bandwidth-only bound predicted Q3_K_M
  50 % too fast here: small K-quants are compute-bound on two cores.)
* **prompt processing** multiplies a batch of tokens by every block matrix (the tied
  embedding is only looked up; logits are computed for the last token alone): the
  mix-weighted per-type rate, divided by those weights.

The usability target (``SpeedTarget``) says what "usable" means for completion while
typing; the recommendation in ``app.core.memory_fit`` prefers quants that meet it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.core.catalog import ArchShape, CatalogEntry
from app.core.machine_check import MachineSpeed

log = logging.getLogger("starpad.speed")

#: The prompt size the target and the table speak of.
PROMPT_TOKENS = 1024


@dataclass(frozen=True)
class MixShares:
    """Share of a quant's weights per ggml tensor type: the matrices a prompt token
    multiplies (block matrices) and those a generated token reads (plus the output)."""

    prompt: dict[str, float]
    gen: dict[str, float]


#: What llama.cpp 0.3.36's quantizer makes of StarCoder2 (``python -m bench.quant_mix``
#: writes this table: it quantizes a probe with the 3B's layers and GQA ratio and weighs
#: each tensor by its size in the real 3B; the 3B's own generated files agree).
QUANT_MIX: dict[str, MixShares] = {
    "F16": MixShares(prompt={"F16": 1.0}, gen={"F16": 1.0}),
    "Q8_0": MixShares(prompt={"Q8_0": 1.0}, gen={"Q8_0": 1.0}),
    "Q6_K": MixShares(prompt={"Q6_K": 1.0}, gen={"Q6_K": 1.0}),
    "Q5_K_M": MixShares(prompt={"Q5_K": 0.813, "Q6_K": 0.187}, gen={"Q5_K": 0.772, "Q6_K": 0.228}),
    "Q5_K_S": MixShares(prompt={"Q5_K": 1.0}, gen={"Q5_K": 0.95, "Q6_K": 0.05}),
    "Q5_0": MixShares(prompt={"Q5_0": 1.0}, gen={"Q5_0": 0.95, "Q6_K": 0.05}),
    "Q4_K_M": MixShares(prompt={"Q4_K": 0.813, "Q6_K": 0.187}, gen={"Q4_K": 0.772, "Q6_K": 0.228}),
    "Q4_K_S": MixShares(prompt={"Q4_K": 0.96, "Q5_K": 0.04}, gen={"Q4_K": 0.912, "Q6_K": 0.05, "Q5_K": 0.038}),
    "Q4_0": MixShares(prompt={"Q4_0": 1.0}, gen={"Q4_0": 0.95, "Q6_K": 0.05}),
    "Q3_K_L": MixShares(prompt={"Q3_K": 0.5, "Q5_K": 0.5}, gen={"Q3_K": 0.475, "Q5_K": 0.475, "Q6_K": 0.05}),
    "Q3_K_M": MixShares(prompt={"Q3_K": 0.5, "Q4_K": 0.486, "Q5_K": 0.014},
                        gen={"Q3_K": 0.475, "Q4_K": 0.462, "Q6_K": 0.05, "Q5_K": 0.013}),
    "Q3_K_S": MixShares(prompt={"Q3_K": 1.0}, gen={"Q3_K": 0.95, "Q6_K": 0.05}),
    "Q2_K": MixShares(prompt={"Q2_K": 0.5, "Q3_K": 0.492, "Q4_K": 0.008},
                      gen={"Q2_K": 0.475, "Q3_K": 0.467, "Q6_K": 0.05, "Q4_K": 0.008}),
}


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
    #: False when a tensor type of the quant's mix was not timed (a bandwidth-only
    #: estimate stood in for generation, and the prompt speed is unknown: 0).
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
    """Weights a prompt token is multiplied by: all but the (tied) embedding matrix."""
    return shape.n_params - shape.n_vocab * shape.n_embd


def _seconds_per_token(shares: dict[str, float], weights: int, rates: dict[str, float]) -> float | None:
    """Mix-weighted time for one token over ``weights`` weights; None if a type is untimed."""
    if any(t not in rates or rates[t] <= 0 for t in shares):
        return None
    return sum(share * weights / rates[t] for t, share in shares.items())


def mix_for(quant: str) -> MixShares | None:
    return QUANT_MIX.get(quant.upper())


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
    mix = mix_for(quant)
    gen_rates = {t: k.gen_param_tps for t, k in speed.kernels.items()}
    prompt_rates = {t: k.prompt_param_tps for t, k in speed.kernels.items()}
    kv_seconds = shape.kv_bytes_per_token() * n_ctx / speed.bandwidth_bytes_per_s
    t_weights = _seconds_per_token(mix.gen, shape.n_params, gen_rates) if mix else None
    t_prompt = _seconds_per_token(mix.prompt, prompt_params(shape), prompt_rates) if mix else None
    measured = t_weights is not None and t_prompt is not None
    if t_weights is None:
        # Untimed mix (an older check, a type this llama.cpp lacks): the memory bound alone.
        t_weights = file_bytes / speed.bandwidth_bytes_per_s
    t_token = t_weights + kv_seconds
    if gpu_fraction > 0:
        slowdown = (1.0 - gpu_fraction) + gpu_fraction / gpu_speedup
        t_token *= slowdown
        if t_prompt is not None:
            t_prompt *= slowdown
    prompt_tps = 1.0 / t_prompt if t_prompt else 0.0
    return SpeedPrediction(1.0 / t_token, prompt_tps, measured)


def predict_entry(entry: CatalogEntry, speed: MachineSpeed, n_ctx: int = PROMPT_TOKENS) -> SpeedPrediction:
    return predict(entry.size_bytes, entry.shape, entry.quant, speed, n_ctx)
