"""llama.cpp's own StarCoder2 tokenizer test vectors, through our engine on the generated model.

The vectors (bench/vocab/ggml-vocab-starcoder.gguf.inp/.out, from llama.cpp's models/) are what
llama.cpp's tests/test-tokenizer-0 checks, tokenizing with add_special=False and
parse_special=False: exactly how Engine.tokenize calls llama.cpp (no BOS, special-token text
stays text). Passing every one proves the generated models carry StarCoder2's real tokenizer,
so the token counts and ids every other test sees are the real model's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.engine import Engine, EngineConfig
from app.core.model_info import FimTokenIds

VOCAB = Path(__file__).resolve().parents[2] / "bench" / "vocab" / "ggml-vocab-starcoder.gguf"
SEPARATOR = "\n__ggml_vocab_test__\n"


def read_vectors(vocab: Path) -> list[tuple[str, list[int]]]:
    """Pair inputs and expected ids exactly as test-tokenizer-0.cpp's read_tests() does.

    Inputs: the whole .inp split on the separator, the text after the last separator (empty
    here) not being an input. Expected: one .out line per input, stripped, ids separated by
    spaces; an empty line means no tokens. Bytes are decoded by hand so that no newline
    translation can touch inputs made of whitespace.
    """
    raw = vocab.with_name(vocab.name + ".inp").read_bytes().decode("utf-8")
    inputs: list[str] = []
    pos = 0
    while pos < len(raw):
        end = raw.find(SEPARATOR, pos)
        if end == -1:
            inputs.append(raw[pos:])
            break
        inputs.append(raw[pos:end])
        pos = end + len(SEPARATOR)
    lines = vocab.with_name(vocab.name + ".out").read_bytes().decode("utf-8").split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line, as std::getline reads it
    assert len(inputs) == len(lines), (len(inputs), len(lines))
    return [(text, [int(t) for t in line.strip().split(" ") if t]) for text, line in zip(inputs, lines, strict=True)]


VECTORS = read_vectors(VOCAB)


@pytest.fixture(scope="module")
def shared_engine(tiny_model: Path) -> Iterator[Engine]:
    """One engine for all 46 vectors: tokenizing changes no state, and a load per vector
    (0.25 s each on 2 cores) would be most of this file's time."""
    eng = Engine()
    eng.load(tiny_model, EngineConfig(n_ctx=4096, n_threads=2))
    yield eng
    eng.close()


def test_the_vectors_are_read_whole() -> None:
    assert len(VECTORS) == 46
    assert VECTORS[0] == ("ied 4 ½ months", [4850, 244, 57, 244, 162, 159, 17722])
    assert ("", []) in VECTORS and ("\n\n\n", [3067]) in VECTORS
    # Made without BOS (StarCoder2's BOS is <|endoftext|>=0) and without special tokens.
    assert all(ids[:1] != [0] for _, ids in VECTORS if ids)
    assert all(token >= 38 for _, ids in VECTORS for token in ids)


@pytest.mark.parametrize(("text", "expected"), VECTORS, ids=[f"{i:02d}" for i in range(len(VECTORS))])
def test_engine_tokenizes_like_llama_cpp_test_vectors(shared_engine: Engine, text: str, expected: list[int]) -> None:
    assert shared_engine.tokenize(text) == expected
    # And back: byte-level BPE loses nothing.
    assert b"".join(shared_engine.token_bytes(t) for t in expected) == text.encode("utf-8")


def test_vocabulary_size_and_fim_ids_are_starcoder2s(engine: Engine) -> None:
    assert engine.info is not None and engine.info.n_vocab == 49152
    # llama.cpp holds all of it: the last token of StarCoder2's vocabulary.
    assert engine.token_text(49151) == "sdb"
    assert engine.fim_tokens == FimTokenIds(pre=1, suf=3, mid=2, pad=4, rep=5, sep=6)
    assert [engine.token_text(t) for t in range(7)] == [
        "<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<repo_name>", "<file_sep>",
    ]
