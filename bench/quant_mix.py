"""Which ggml tensor types each llama.cpp quantization mix uses for StarCoder2, by share of weights.

A "Q4_K_M" file is not all Q4_K: llama.cpp's quantizer gives some tensors more bits
(attention V, half of the FFN-down matrices, the embedding...). The speed prediction
(``app.core.speed.QUANT_MIX``) times each tensor type on this machine and weighs the
times by these shares, so this script writes the table it uses:

    python -m bench.quant_mix            # prints the table as Python

It builds a narrow model with the 3B's layer count and head ratios (the mix rules look
at tensor names, layer indices and the GQA ratio, never at the width), quantizes it with
llama.cpp's own quantizer to every quant of the catalog, reads the tensor types back, and
weighs each tensor by its size in the real 3B. Two shares per quant: the matrices a prompt
token multiplies (blocks only; the embedding is a lookup) and those a generated token
reads (blocks plus the tied embedding as the output layer).
"""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path

from app.core.catalog import QUALITY_ORDER
from bench.synthetic_model import STARCODER2_3B, ModelShape, _tensor_specs, quantize, write_model

#: The 3B's structure at a quarter of its width (768 / 24 heads / 2 KV heads: GQA 12 as in the 3B).
NARROW = ModelShape("mix-probe", n_vocab=49152, n_embd=768, n_layer=STARCODER2_3B.n_layer, n_head=24,
                    n_head_kv=2, n_ff=1024)


def tensor_types(path: Path) -> dict[str, str]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {t.name: t.tensor_type.name for t in reader.tensors if len(t.shape) >= 2}


def shares(types: dict[str, str], *, with_output: bool) -> dict[str, float]:
    """Share of the real 3B's weights per ggml type (matrices only)."""
    sizes = {name: shape[0] * shape[1] for name, shape, _ in _tensor_specs(STARCODER2_3B) if len(shape) == 2}
    weight: collections.Counter[str] = collections.Counter()
    for name, size in sizes.items():
        if name == "token_embd.weight" and not with_output:
            continue
        weight[types[name]] += size
    total = sum(weight.values())
    return {t: round(n / total, 3) for t, n in weight.most_common()}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="starpad-mix-") as tmp:
        src = write_model(Path(tmp) / "f16.gguf", NARROW)
        print("QUANT_MIX: dict[str, MixShares] = {")
        for quant in QUALITY_ORDER:
            if quant == "F16":
                types = tensor_types(src)
            else:
                dst = Path(tmp) / f"{quant}.gguf"
                quantize(src, dst, quant, threads=2)
                types = tensor_types(dst)
                dst.unlink()
            print(f'    "{quant}": MixShares(prompt={shares(types, with_output=False)}, '
                  f'gen={shares(types, with_output=True)}),')
        print("}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
