"""The built-in StarCoder2 GGUF catalog, usable offline.

Sizes are exact where we know them and otherwise computed from the architecture's
parameter count and each quantization's bits per weight, marked approximate until the
user refreshes the catalog from the Hub (which also supplies sha256 digests).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ArchShape:
    """What the memory estimate needs to know about a model family member."""

    n_params: int
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_vocab: int = 49152
    n_ctx_train: int = 16384

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def kv_bytes_per_token(self, bytes_per_value: int = 2) -> int:
        """K and V, every layer, every KV head (F16 cache by default)."""
        return 2 * self.n_layer * self.n_head_kv * self.head_dim * bytes_per_value


# bigcode/starcoder2-{3b,7b,15b} config.json
STARCODER2_3B = ArchShape(n_params=3_030_371_328, n_layer=30, n_embd=3072, n_head=24, n_head_kv=2)
STARCODER2_7B = ArchShape(n_params=7_173_923_840, n_layer=32, n_embd=4608, n_head=36, n_head_kv=4)
STARCODER2_15B = ArchShape(n_params=15_957_889_024, n_layer=40, n_embd=6144, n_head=48, n_head_kv=4)

#: Effective bits per weight of llama.cpp's quantization mixes (incl. their F32 norms).
BITS_PER_WEIGHT: dict[str, float] = {
    "Q2_K": 3.35, "Q3_K_S": 3.50, "Q3_K_M": 3.91, "Q3_K_L": 4.27, "Q4_0": 4.55, "Q4_K_S": 4.58,
    "Q4_K_M": 4.99, "Q5_0": 5.54, "Q5_K_S": 5.54, "Q5_K_M": 5.69, "Q6_K": 6.56, "Q8_0": 8.50, "F16": 16.0,
}
#: Best quality first: the recommendation walks this order.
QUALITY_ORDER = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_0",
                 "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K")


@dataclass(frozen=True)
class CatalogEntry:
    family: str  # "StarCoder2 3B"
    repo_id: str
    filename: str
    quant: str
    shape: ArchShape
    size_bytes: int
    size_exact: bool = False
    sha256: str | None = None

    @property
    def bits_per_weight(self) -> float:
        return self.size_bytes * 8 / self.shape.n_params

    @property
    def key(self) -> str:
        return f"{self.repo_id}/{self.filename}"


#: Sizes measured on the real files (the 3B Q4_K_M and Q8_0 of second-state).
_KNOWN_SIZES = {
    ("second-state/StarCoder2-3B-GGUF", "Q4_K_M"): 1_890_000_000,
    ("second-state/StarCoder2-3B-GGUF", "Q8_0"): 3_220_000_000,
}


def _entries(family: str, repo_id: str, stem: str, shape: ArchShape) -> list[CatalogEntry]:
    entries = []
    for quant in QUALITY_ORDER:
        known = _KNOWN_SIZES.get((repo_id, quant))
        size = known or round(shape.n_params * BITS_PER_WEIGHT[quant] / 8)
        name = f"{stem}-{'f16' if quant == 'F16' else quant}.gguf"
        entries.append(CatalogEntry(family, repo_id, name, quant, shape, size, size_exact=False))
    return entries


def builtin_catalog() -> list[CatalogEntry]:
    return [
        *_entries("StarCoder2 3B", "second-state/StarCoder2-3B-GGUF", "starcoder2-3b", STARCODER2_3B),
        *_entries("StarCoder2 7B", "second-state/StarCoder2-7B-GGUF", "starcoder2-7b", STARCODER2_7B),
        *_entries("StarCoder2 15B", "second-state/StarCoder2-15B-GGUF", "starcoder2-15b", STARCODER2_15B),
    ]


def with_hub_metadata(entry: CatalogEntry, size_bytes: int, sha256: str | None) -> CatalogEntry:
    """The Hub's listing replaces our estimate with the real size and digest."""
    return replace(entry, size_bytes=size_bytes, size_exact=True, sha256=sha256)
