"""Validate and read a GGUF file's header in Python, before llama.cpp touches it.

llama.cpp is robust against most bad files, but "most" is not enough for an app whose
users import files from anywhere: an absurd count can make it try to allocate terabytes
and a truncated file is only noticed deep inside loading. This reader checks every count
and length against the real file size, using an mmap so a 2 GB model costs no reads
beyond its header, and raises a typed error with a sentence a person understands.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from app.core.errors import CorruptModelError, NotGGUFError, TruncatedModelError
from app.core.units import format_bytes

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
#: Far above any real model (StarCoder2-15B has 483 tensors and ~40 keys).
MAX_TENSORS = 1_000_000
MAX_KV = 1_000_000
MAX_DIMS = 4
#: Keys whose array contents we keep; other arrays are only bounds-checked.
KEPT_ARRAYS = frozenset({"tokenizer.ggml.tokens"})

# GGUF metadata value types.
_SCALARS: dict[int, str] = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d",
}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: shape[0] is the row length
    ggml_type: int
    offset: int  # relative to the data section
    nbytes: int

    @property
    def n_elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @property
    def type_name(self) -> str:
        return GGMLQuantizationType(self.ggml_type).name


@dataclass(frozen=True)
class ArraySummary:
    """An array value we checked but did not keep (merges, scores: megabytes of data)."""

    element_type: int
    length: int


@dataclass
class GGUFHeader:
    path: Path
    version: int
    file_size: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    data_offset: int
    alignment: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    def arch_key(self, suffix: str, default: Any = None) -> Any:
        """``{arch}.{suffix}`` — GGUF namespaces hyper-parameters by architecture."""
        return self.metadata.get(f"{self.architecture}.{suffix}", default)


class _Cursor:
    """Bounds-checked little-endian reads from an mmap."""

    def __init__(self, buf: mmap.mmap | bytes, size: int) -> None:
        self.buf = buf
        self.size = size
        self.pos = 0

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            if n > self.size:
                raise CorruptModelError(
                    f"corrupt GGUF header: {what} claims {format_bytes(n)} in a {format_bytes(self.size)} file"
                )
            raise TruncatedModelError(
                f"file is truncated inside its header (while reading {what}): "
                f"{format_bytes(self.size)} on disk"
            )

    def unpack(self, fmt: str, what: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def string(self, what: str) -> str:
        length = self.unpack("<Q", what)
        self.need(length, what)
        raw = bytes(self.buf[self.pos : self.pos + length])
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n


def _describe_start(raw: bytes) -> str:
    if not raw:
        return "nothing"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in raw):
        return repr(raw.decode("ascii"))
    return raw.hex(" ")


def _check_magic(raw: bytes, size: int) -> None:
    if size == 0:
        raise NotGGUFError("not a GGUF model: the file is empty (0 bytes)")
    magic = raw[:4]
    if magic == GGUF_MAGIC:
        if size < 24:
            raise TruncatedModelError(f"file is truncated: {size} bytes, too short for a GGUF header")
        return
    legacy = {b"lmgg": "GGML", b"fmgg": "GGMF", b"tjgg": "GGJT"}
    if magic in legacy:
        raise NotGGUFError(
            f"not a GGUF model: this is an old {legacy[magic]}-format file; convert it to GGUF with llama.cpp"
        )
    if magic[:2] == b"PK" or magic[:3] == b"\x1f\x8b\x08":
        raise NotGGUFError("not a GGUF model: the file is an archive (zip or gzip); extract the .gguf first")
    raise NotGGUFError(f"not a GGUF model: the file starts with {_describe_start(raw[:8])} instead of 'GGUF'")


def _read_value(cur: _Cursor, vtype: int, key: str, keep_array: bool) -> Any:
    if vtype in _SCALARS:
        return cur.unpack(_SCALARS[vtype], f"value of {key}")
    if vtype == _STRING:
        return cur.string(f"value of {key}")
    if vtype == _ARRAY:
        etype = cur.unpack("<I", f"array type of {key}")
        length = cur.unpack("<Q", f"array length of {key}")
        if etype in _SCALARS:
            item = struct.calcsize(_SCALARS[etype])
            cur.need(length * item, f"array {key}")
            if keep_array:
                values = list(struct.unpack_from(f"<{length}{_SCALARS[etype][1]}", cur.buf, cur.pos))
                cur.pos += length * item
                return values
            cur.skip(length * item, f"array {key}")
            return ArraySummary(etype, length)
        if etype == _STRING:
            cur.need(length * 8, f"array {key}")  # every string has at least its length field
            if keep_array:
                return [cur.string(f"array {key}") for _ in range(length)]
            for _ in range(length):
                cur.skip(cur.unpack("<Q", f"array {key}"), f"array {key}")
            return ArraySummary(etype, length)
        raise CorruptModelError(f"corrupt GGUF header: array {key} has unknown element type {etype}")
    raise CorruptModelError(f"corrupt GGUF header: metadata key {key!r} has unknown type {vtype}")


def read_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Parse and validate a GGUF file's header; raise a ModelFileError if it is unusable."""
    path = Path(path)
    try:
        size = path.stat().st_size
        handle = path.open("rb")
    except FileNotFoundError:
        raise NotGGUFError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise NotGGUFError(f"{path} is a folder, not a model file") from None
    except PermissionError:
        raise NotGGUFError(f"no permission to read {path}") from None
    with handle:
        _check_magic(handle.read(8), size)
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(path, buf, size)


def _parse(path: Path, buf: mmap.mmap, size: int) -> GGUFHeader:
    cur = _Cursor(buf, size)
    cur.pos = 4
    version = cur.unpack("<I", "version")
    if version not in SUPPORTED_VERSIONS:
        if version & 0xFFFF0000 and not version & 0xFFFF:
            raise CorruptModelError("not a supported GGUF model: it is big-endian; Starpad needs little-endian GGUF")
        raise CorruptModelError(f"GGUF version {version} is not supported (expected 2 or 3)")
    n_tensors = cur.unpack("<Q", "tensor count")
    n_kv = cur.unpack("<Q", "metadata count")
    # Counts beyond any real model mean corruption; plausible counts that the file is too
    # short to hold mean it was cut (each entry needs >= 14 bytes, each tensor info >= 24).
    checks = ((n_kv, MAX_KV, 14, "metadata entries"), (n_tensors, MAX_TENSORS, 24, "tensors"))
    for count, limit, min_bytes, what in checks:
        if count > limit:
            raise CorruptModelError(f"corrupt GGUF header: it claims {count:,} {what} in a {format_bytes(size)} file")
        if count * min_bytes > size:
            raise TruncatedModelError(
                f"file is truncated inside its header: {count:,} {what} cannot fit in {format_bytes(size)}"
            )

    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string("metadata key")
        vtype = cur.unpack("<I", f"type of {key}")
        metadata[key] = _read_value(cur, vtype, key, keep_array=key in KEPT_ARRAYS)

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise CorruptModelError(f"corrupt GGUF header: alignment {alignment!r} is not a power of two")

    infos: list[tuple[str, tuple[int, ...], int, int]] = []
    for _ in range(n_tensors):
        name = cur.string("tensor name")
        n_dims = cur.unpack("<I", f"dimensions of {name}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise CorruptModelError(f"corrupt GGUF header: tensor {name} has {n_dims} dimensions")
        shape = tuple(cur.unpack("<Q", f"shape of {name}") for _ in range(n_dims))
        ggml_type = cur.unpack("<I", f"type of {name}")
        offset = cur.unpack("<Q", f"offset of {name}")
        infos.append((name, shape, ggml_type, offset))

    data_offset = (cur.pos + alignment - 1) // alignment * alignment
    tensors = [_tensor_info(name, shape, t, off, alignment) for name, shape, t, off in infos]
    needed = max((data_offset + t.offset + t.nbytes for t in tensors), default=cur.pos)
    if needed > size:
        raise TruncatedModelError(f"file is truncated: {format_bytes(size)} of {format_bytes(needed)}")
    return GGUFHeader(path, version, size, metadata, tensors, data_offset, alignment)


def _tensor_info(name: str, shape: tuple[int, ...], ggml_type: int, offset: int, alignment: int) -> TensorInfo:
    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise CorruptModelError(
            f"tensor {name} has unknown data type {ggml_type} (corrupt, or made by a newer llama.cpp)"
        ) from None
    n_elements = 1
    for dim in shape:
        if dim <= 0 or dim > 1 << 40:
            raise CorruptModelError(f"corrupt GGUF header: tensor {name} has dimension {dim}")
        n_elements *= dim
    if n_elements > 1 << 44:
        raise CorruptModelError(f"corrupt GGUF header: tensor {name} has {n_elements:,} elements")
    if shape[0] % block:
        raise CorruptModelError(f"corrupt GGUF header: tensor {name} rows are not whole {block}-element blocks")
    if offset % alignment:
        raise CorruptModelError(f"corrupt GGUF header: tensor {name} data is misaligned")
    return TensorInfo(name, shape, ggml_type, offset, n_elements // block * type_size)
