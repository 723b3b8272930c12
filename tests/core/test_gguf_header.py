"""Malformed model files get a typed error with a clear message, and never reach llama.cpp."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.engine import Engine
from app.core.errors import (
    CorruptModelError,
    ModelFileError,
    NotGGUFError,
    TruncatedModelError,
    UnsupportedModelError,
)
from app.core.gguf_header import read_header
from app.core.model_info import model_info

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _gguf_prefix(version: int = 3, n_tensors: int = 0, n_kv: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def malformed_files(tiny: bytes) -> list[tuple[str, bytes, type[ModelFileError], str]]:
    """(name, content, expected error, substring of its message)."""
    header_end = 24 + 40  # somewhere inside the metadata
    cases = [
        ("empty", b"", NotGGUFError, "empty"),
        ("text", b"def main():\n    print('hi')\n" * 10, NotGGUFError, "starts with 'def main"),
        ("bad magic", b"GGUX" + tiny[4:], NotGGUFError, "instead of 'GGUF'"),
        ("random bytes", bytes(range(7, 250)) * 40, NotGGUFError, "instead of 'GGUF'"),
        ("legacy ggjt", b"tjgg" + b"\0" * 100, NotGGUFError, "GGJT"),
        ("zip", b"PK\x03\x04" + b"\0" * 100, NotGGUFError, "archive"),
        ("version 99", b"GGUF" + struct.pack("<I", 99) + tiny[8:], CorruptModelError, "version 99"),
        ("big endian", b"GGUF" + struct.pack(">I", 3) + tiny[8:], CorruptModelError, "big-endian"),
        ("tiny header", b"GGUF\x03\0\0", TruncatedModelError, "truncated"),
        ("absurd kv count", _gguf_prefix(n_kv=2**63) + b"\0" * 64, CorruptModelError, "metadata entries"),
        ("absurd tensor count", _gguf_prefix(n_tensors=2**40) + b"\0" * 64, CorruptModelError, "tensors"),
        ("absurd string length", _gguf_prefix(n_kv=1) + struct.pack("<Q", 2**60) + b"\0" * 64,
         CorruptModelError, "claims"),
        ("cut in metadata", tiny[:header_end], TruncatedModelError, "truncated"),
        ("cut in tensor infos", tiny[: len(tiny) // 3], TruncatedModelError, "truncated"),
        ("cut in data", tiny[: len(tiny) - 4096], TruncatedModelError, "truncated: "),
        ("cut by one byte", tiny[:-1], TruncatedModelError, "of 8.2 MB"),
    ]
    return cases


@pytest.fixture(scope="module")
def tiny_bytes(tiny_model: Path) -> bytes:
    return tiny_model.read_bytes()


def test_valid_model_header(tiny_model: Path) -> None:
    header = read_header(tiny_model)
    assert header.architecture == "starcoder2"
    assert header.version == 3
    names = {t.name for t in header.tensors}
    assert {"token_embd.weight", "output_norm.bias", "blk.1.ffn_down.bias"} <= names
    assert "output.weight" not in names  # tied to the embeddings, as in StarCoder2
    assert header.metadata["starcoder2.context_length"] == 16384


def test_malformed_files_get_clear_typed_errors(tmp_path: Path, tiny_bytes: bytes) -> None:
    for name, data, error, message in malformed_files(tiny_bytes):
        path = _write(tmp_path, name.replace(" ", "_") + ".gguf", data)
        with pytest.raises(error) as excinfo:
            model_info(path)
        assert message in str(excinfo.value), f"{name}: {excinfo.value}"
        # The engine refuses it the same way: llama.cpp never sees the file.
        with pytest.raises(error):
            Engine().load(path)


def test_every_truncation_point_is_caught(tmp_path: Path, tiny_bytes: bytes) -> None:
    """Cut the file at many points: each is an error, never a crash of this process."""
    step = max(1, len(tiny_bytes) // 60)
    for cut in range(0, len(tiny_bytes) - 1, step):
        path = _write(tmp_path, "cut.gguf", tiny_bytes[:cut])
        with pytest.raises(ModelFileError):
            model_info(path)


def test_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(NotGGUFError, match="no such file"):
        model_info(tmp_path / "nope.gguf")
    with pytest.raises(NotGGUFError, match="folder"):
        model_info(tmp_path)


def test_non_generative_architecture_is_refused(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "clip.gguf"
    writer = gguf.GGUFWriter(str(path), arch="clip")
    writer.add_tensor("v.weight", np.zeros((4, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UnsupportedModelError, match="architecture clip"):
        model_info(path)


def test_llama_architecture_without_fim_is_prefix_only(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "llama.gguf"
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_token_list(["<s>", "a", "b"])
    writer.add_tensor("token_embd.weight", np.zeros((3, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    info = model_info(path)
    assert info.prefix_only
    assert any("architecture llama is not a fill-in-the-middle code model we know" in n for n in info.notes)


def test_cli_reports_bad_files_in_one_line(tmp_path: Path, tiny_bytes: bytes) -> None:
    for name, data, _error, message in malformed_files(tiny_bytes)[:4] + malformed_files(tiny_bytes)[-2:]:
        path = _write(tmp_path, "bad.gguf", data)
        proc = subprocess.run(
            [sys.executable, str(ROOT / "main.py"), "inspect", str(path)],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 2, name
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("starpad: error: "), proc.stderr
        assert message in lines[0]
