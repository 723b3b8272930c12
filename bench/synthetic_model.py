"""Write StarCoder2-architecture GGUF files with random weights and a real tokenizer.

No real StarCoder2 weights can be fetched on our build machines, yet the engine must be
tested against llama.cpp for real. A model with random weights but the exact StarCoder2
architecture, tensor layout and a genuine byte-level BPE tokenizer (trained here on local
Python source) exercises every code path that matters: loading, FIM token handling, KV
cache reuse, speed and memory. Only the text it writes is gibberish.

    python -m bench.synthetic_model tiny  out/tiny.gguf
    python -m bench.synthetic_model 3b    out/sc2-3b-f16.gguf [--quantize Q4_K_M out/q4.gguf]
"""

from __future__ import annotations

import argparse
import json
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

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

#: Standard-library modules whose source trains the tokenizer: present on every CPython.
_CORPUS_MODULES: tuple[str, ...] = (
    "textwrap.py", "argparse.py", "dataclasses.py", "functools.py", "string.py",
    "csv.py", "heapq.py", "bisect.py", "shlex.py", "fnmatch.py", "glob.py",
    "pprint.py", "difflib.py", "json/encoder.py", "json/decoder.py", "json/__init__.py",
    "calendar.py", "fractions.py", "statistics.py", "ipaddress.py",
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


TINY = ModelShape("tiny", n_vocab=4096, n_embd=64, n_layer=2, n_head=4, n_head_kv=2, n_ff=256)
#: bigcode/starcoder2-3b's config.json.
STARCODER2_3B = ModelShape(
    "3b", n_vocab=49152, n_embd=3072, n_layer=30, n_head=24, n_head_kv=2, n_ff=12288
)
SHAPES = {"tiny": TINY, "3b": STARCODER2_3B}


def training_corpus() -> Iterator[str]:
    """Yield local Python source files: real code, so merges look like a code tokenizer's."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for rel in _CORPUS_MODULES:
        path = stdlib / rel
        if path.is_file():
            yield path.read_text(encoding="utf-8", errors="replace")


def train_tokenizer(vocab_size: int) -> tuple[list[str], list[str]]:
    """Train StarCoder2's kind of tokenizer; return (tokens by id, merges as 'a b')."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(STARCODER2_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(), trainer)
    vocab = tokenizer.get_vocab()
    tokens = [""] * len(vocab)
    for text, token_id in vocab.items():
        tokens[token_id] = text
    raw_merges = json.loads(tokenizer.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else f"{m[0]} {m[1]}" for m in raw_merges]
    # llama.cpp takes the vocab size from the token list: pad it to the shape's size.
    pad = 0
    while len(tokens) < vocab_size:
        tokens.append(f"<unused_{pad}>")
        pad += 1
    return tokens, merges


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
    rng: np.random.Generator, name: str, np_shape: tuple[int, ...], std: float, n_special: int
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
        # Tied output: quiet special-token rows so random weights rarely emit them unasked.
        data[:n_special] *= 0.05
    return data.astype(np.float16)


def write_model(path: Path, shape: ModelShape, seed: int = 1234) -> Path:
    """Write an F16 StarCoder2 GGUF; deterministic for a given shape, seed and corpus."""
    import gguf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens, merges = train_tokenizer(shape.n_vocab)
    n_special = len(STARCODER2_SPECIAL_TOKENS)
    token_types = [
        gguf.TokenType.CONTROL if i < n_special else gguf.TokenType.NORMAL for i in range(len(tokens))
    ]

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
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("starcoder")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    writer.add_add_bos_token(False)
    ids = {text: i for i, text in enumerate(tokens[:n_special])}
    for key, text in (
        ("pre", "<fim_prefix>"), ("suf", "<fim_suffix>"), ("mid", "<fim_middle>"),
        ("pad", "<fim_pad>"), ("rep", "<repo_name>"), ("sep", "<file_sep>"),
    ):
        writer.add_uint32(f"tokenizer.ggml.fim_{key}_token_id", ids[text])

    specs = _tensor_specs(shape)
    for name, np_shape, std in specs:
        dtype = np.dtype(np.float32 if (std == 0.0 or len(np_shape) == 1) else np.float16)
        nbytes = int(np.prod(np_shape)) * dtype.itemsize
        writer.add_tensor_info(name, np_shape, dtype, nbytes)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for name, np_shape, std in specs:  # streamed: the 3B shape never sits in memory whole
        writer.write_tensor_data(_make_tensor(rng, name, np_shape, std, n_special))
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
