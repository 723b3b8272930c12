"""Write StarCoder2-architecture GGUF files with random weights and StarCoder2's real tokenizer.

No real StarCoder2 weights can be fetched on our build machines, yet the engine must be
tested against llama.cpp for real. A model with random weights but the exact StarCoder2
architecture and tensor layout exercises every code path that matters: loading, FIM token
handling, KV cache reuse, speed and memory. Only the text it writes is gibberish.

The tokenizer is not synthetic: every shape copies StarCoder2's own vocabulary (49,152
tokens, 48,872 merges, the 38 control tokens, pre-tokenizer ``starcoder``) from the
vocabulary-only GGUF that llama.cpp builds from bigcode/starcoder2-3b, vendored in
``bench/vocab/`` (see its README for provenance and licences). Prompts therefore have the
token counts, ids and FIM ids of the real model, and llama.cpp's own tokenizer test vectors
hold for our models (tests/core/test_tokenizer_vectors.py). The FIM id keys are added, as
real StarCoder2 GGUF conversions carry them.

    python -m bench.synthetic_model tiny  out/tiny.gguf
    python -m bench.synthetic_model 3b    out/sc2-3b-f16.gguf [--quantize Q4_K_M out/q4.gguf]
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: StarCoder2's vocabulary as llama.cpp converts it (llama.cpp models/, MIT; bigcode/starcoder2-3b).
VOCAB_PATH = Path(__file__).resolve().parent / "vocab" / "ggml-vocab-starcoder.gguf"

#: StarCoder2's special tokens, in the order of its tokenizer.json (ids 0..37).
STARCODER2_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>",
    "<repo_name>", "<file_sep>", "<issue_start>", "<issue_comment>", "<issue_closed>",
    "<jupyter_start>", "<jupyter_text>", "<jupyter_code>", "<jupyter_output>",
    "<jupyter_script>", "<empty_output>", "<code_to_intermediate>", "<intermediate_to_code>",
    "<pr>", "<pr_status>", "<pr_is_merged>", "<pr_base>", "<pr_file>", "<pr_base_code>",
    "<pr_diff>", "<pr_diff_hunk>", "<pr_comment>", "<pr_event_id>", "<pr_review>",
    "<pr_review_state>", "<pr_review_comment>", "<pr_in_reply_to_review_id>",
    "<pr_in_reply_to_comment_id>", "<pr_diff_hunk_comment_line>", "<NAME>", "<EMAIL>",
    "<KEY>", "<PASSWORD>",
)

#: The FIM id keys real StarCoder2 conversions write (llama.cpp reads them first), by token text.
FIM_KEY_TOKENS: tuple[tuple[str, str], ...] = (
    ("tokenizer.ggml.fim_pre_token_id", "<fim_prefix>"),
    ("tokenizer.ggml.fim_suf_token_id", "<fim_suffix>"),
    ("tokenizer.ggml.fim_mid_token_id", "<fim_middle>"),
    ("tokenizer.ggml.fim_pad_token_id", "<fim_pad>"),
    ("tokenizer.ggml.fim_rep_token_id", "<repo_name>"),
    ("tokenizer.ggml.fim_sep_token_id", "<file_sep>"),
)


@dataclass(frozen=True)
class ModelShape:
    """Hyper-parameters of a StarCoder2 model (the names llama.cpp's GGUF keys use)."""

    name: str
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_ctx_train: int = 16384
    rope_freq_base: float = 999999.4420358813
    layer_norm_eps: float = 1e-5


#: Two narrow layers: the 49,152-token embedding dominates (6.3 MB F16), still quick to write.
TINY = ModelShape("tiny", n_vocab=49152, n_embd=64, n_layer=2, n_head=4, n_head_kv=2, n_ff=256)
#: bigcode/starcoder2-3b's config.json.
STARCODER2_3B = ModelShape(
    "3b", n_vocab=49152, n_embd=3072, n_layer=30, n_head=24, n_head_kv=2, n_ff=12288
)
SHAPES = {"tiny": TINY, "3b": STARCODER2_3B}


@dataclass(frozen=True)
class VocabKey:
    """One ``tokenizer.*`` key of a GGUF with its exact GGUF types, so a copy is byte-identical."""

    name: str
    value: Any
    vtype: Any  # gguf.GGUFValueType
    sub_type: Any = None  # the element type of an array


@dataclass(frozen=True)
class Vocabulary:
    """A tokenizer read from a GGUF: every ``tokenizer.*`` key in file order, plus views of it."""

    keys: tuple[VocabKey, ...]
    tokens: tuple[str, ...]
    token_types: tuple[int, ...]

    def token_id(self, text: str) -> int:
        return self.tokens.index(text)

    def control_ids(self) -> list[int]:
        import gguf

        return [i for i, kind in enumerate(self.token_types) if kind == gguf.TokenType.CONTROL]


def read_vocabulary(path: Path = VOCAB_PATH) -> Vocabulary:
    """Read every ``tokenizer.*`` key of a GGUF with the gguf package's own reader.

    Copying keys wholesale (model, pre-tokenizer, tokens, types, merges, bos/eos/unknown ids
    and whatever a newer conversion adds) keeps our models' tokenizer exactly llama.cpp's.
    Cached per file: the result is immutable and parsing takes a second or more.
    """
    return _read_vocabulary(Path(path).resolve())


@functools.lru_cache(maxsize=4)
def _read_vocabulary(path: Path) -> Vocabulary:
    import gguf

    class PlainArrayReader(gguf.GGUFReader):
        """GGUFReader parsing from a plain ndarray view of its memory map.

        The reader slices its np.memmap once per value part (~250,000 times for 98,000
        strings) and every memmap slice runs Python hooks: 2.9 s instead of 1.1 s here. The
        view shares the same mapped bytes. Should gguf rename ``_get``, this override is
        simply never called and parsing is only slower.
        """

        def _get(self, *args: Any, **kwargs: Any) -> Any:
            if isinstance(self.data, np.memmap):
                self.data = self.data.view(np.ndarray)  # type: ignore[assignment]  # same bytes
            return super()._get(*args, **kwargs)

    reader = PlainArrayReader(str(path))
    keys = []
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        keys.append(VocabKey(name, field.contents(), vtype, sub_type))
    by_name = {key.name: key.value for key in keys}
    tokens = tuple(by_name.get("tokenizer.ggml.tokens", ()))
    token_types = tuple(by_name.get("tokenizer.ggml.token_type", ()))
    if not tokens or len(token_types) != len(tokens):
        raise ValueError(f"{path}: no usable tokenizer ({len(tokens)} tokens, {len(token_types)} token types)")
    return Vocabulary(tuple(keys), tokens, token_types)


def starcoder2_vocabulary(shape: ModelShape, path: Path = VOCAB_PATH) -> Vocabulary:
    """StarCoder2's vocabulary, checked against what the shape and the FIM keys expect."""
    vocab = read_vocabulary(path)
    if len(vocab.tokens) != shape.n_vocab:
        raise ValueError(f"{path}: {len(vocab.tokens):,} tokens, the {shape.name} shape needs {shape.n_vocab:,}")
    specials = vocab.tokens[: len(STARCODER2_SPECIAL_TOKENS)]
    if specials != STARCODER2_SPECIAL_TOKENS:
        raise ValueError(f"{path}: not StarCoder2's special tokens: {specials[:8]}...")
    return vocab


def _tensor_specs(shape: ModelShape) -> list[tuple[str, tuple[int, ...], float]]:
    """(name, numpy shape, init std) for every tensor; std 0 marks a norm weight (ones)."""
    head_dim = shape.n_embd // shape.n_head
    n_embd_kv = head_dim * shape.n_head_kv
    e, f = shape.n_embd, shape.n_ff
    specs: list[tuple[str, tuple[int, ...], float]] = [("token_embd.weight", (shape.n_vocab, e), 0.1)]
    for i in range(shape.n_layer):
        p = f"blk.{i}."
        specs += [
            (p + "attn_norm.weight", (e,), 0.0),
            (p + "attn_norm.bias", (e,), 0.02),
            (p + "attn_q.weight", (e, e), 0.02),
            (p + "attn_q.bias", (e,), 0.02),
            (p + "attn_k.weight", (n_embd_kv, e), 0.02),
            (p + "attn_k.bias", (n_embd_kv,), 0.02),
            (p + "attn_v.weight", (n_embd_kv, e), 0.02),
            (p + "attn_v.bias", (n_embd_kv,), 0.02),
            (p + "attn_output.weight", (e, e), 0.02),
            (p + "attn_output.bias", (e,), 0.02),
            (p + "ffn_norm.weight", (e,), 0.0),
            (p + "ffn_norm.bias", (e,), 0.02),
            (p + "ffn_up.weight", (f, e), 0.02),
            (p + "ffn_up.bias", (f,), 0.02),
            (p + "ffn_down.weight", (e, f), 0.02),
            (p + "ffn_down.bias", (e,), 0.02),
        ]
    specs += [("output_norm.weight", (e,), 0.0), ("output_norm.bias", (e,), 0.02)]
    return specs


def _make_tensor(
    rng: np.random.Generator, name: str, np_shape: tuple[int, ...], std: float, quiet_rows: list[int]
) -> np.ndarray:
    if std == 0.0:
        return np.ones(np_shape, dtype=np.float32)
    data = rng.standard_normal(np_shape, dtype=np.float32)
    if len(np_shape) == 2 and name != "token_embd.weight":
        # 1/sqrt(fan_in), as real initialisations: the blocks must matter as much as the
        # residual stream, or a narrow model only ever predicts its current token again.
        std = max(std, 1.0 / np.sqrt(np_shape[1]))
    data *= std
    if len(np_shape) == 1:
        return data  # norms and biases stay F32, as llama.cpp expects
    if name == "token_embd.weight":
        # Tied output: quiet control-token rows so random weights rarely emit them unasked.
        data[quiet_rows] *= 0.05
    return data.astype(np.float16)


def write_model(path: Path, shape: ModelShape, seed: int = 1234, vocab_path: Path = VOCAB_PATH) -> Path:
    """Write an F16 StarCoder2 GGUF; deterministic for a given shape, seed and vocabulary."""
    import gguf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vocab = starcoder2_vocabulary(shape, vocab_path)

    writer = gguf.GGUFWriter(str(path), arch="starcoder2")
    writer.add_name(f"StarCoder2 {shape.name} (synthetic, random weights)")
    writer.add_context_length(shape.n_ctx_train)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_layer_norm_eps(shape.layer_norm_eps)
    writer.add_rope_freq_base(shape.rope_freq_base)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for key in vocab.keys:
        writer.add_key_value(key.name, key.value, key.vtype, sub_type=key.sub_type)
    present = {key.name for key in vocab.keys}
    for name, text in FIM_KEY_TOKENS:
        if name not in present:
            writer.add_uint32(name, vocab.token_id(text))

    specs = _tensor_specs(shape)
    for name, np_shape, std in specs:
        dtype = np.dtype(np.float32 if (std == 0.0 or len(np_shape) == 1) else np.float16)
        nbytes = int(np.prod(np_shape)) * dtype.itemsize
        writer.add_tensor_info(name, np_shape, dtype, nbytes)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    quiet_rows = vocab.control_ids()
    for name, np_shape, std in specs:  # streamed: the 3B shape never sits in memory whole
        writer.write_tensor_data(_make_tensor(rng, name, np_shape, std, quiet_rows))
    writer.close()
    return path


def quantize(src: Path, dst: Path, ftype_name: str, threads: int = 0, allow_requantize: bool = False) -> Path:
    """Quantize with llama.cpp's own quantizer, exactly as real GGUF quants are made."""
    import llama_cpp

    from app.core import llama_runtime

    llama_runtime.ensure_initialised()  # llama.cpp's quantizer log goes to our logger, not stdout
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype_name.upper()}")
    params.nthread = threads
    params.allow_requantize = allow_requantize
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize failed with code {rc}")
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--quantize", nargs=2, metavar=("TYPE", "OUT"), help="e.g. Q4_K_M out.gguf")
    args = parser.parse_args(argv)
    write_model(args.out, SHAPES[args.shape], seed=args.seed)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    if args.quantize:
        qtype, qout = args.quantize
        quantize(args.out, Path(qout), qtype)
        print(f"wrote {qout} ({Path(qout).stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
