"""What a GGUF model is, read from its header alone (no weights loaded).

The CLI's ``inspect``, the model dialog and the memory estimator all need these facts
for files that may be too large to load, so they come from the validated header.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gguf.constants import GGMLQuantizationType, LlamaFileType

from app.core.errors import UnsupportedModelError
from app.core.gguf_header import GGUFHeader, read_header

#: Code models trained with fill-in-the-middle that llama.cpp runs.
FIM_ARCHITECTURES = frozenset({"starcoder2", "starcoder"})
#: Architectures that cannot generate text at all: refused outright.
NON_GENERATIVE_ARCHITECTURES = frozenset(
    {"clip", "bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "t5encoder",
     "wavtokenizer-dec", "neo-bert", "modern-bert"}
)
_FIM_TEXTS = {
    "pre": ("<fim_prefix>", "<|fim_prefix|>", "<PRE>", "<|fim▁begin|>"),
    "suf": ("<fim_suffix>", "<|fim_suffix|>", "<SUF>", "<|fim▁hole|>"),
    "mid": ("<fim_middle>", "<|fim_middle|>", "<MID>", "<|fim▁end|>"),
    "pad": ("<fim_pad>", "<|fim_pad|>"),
    "rep": ("<repo_name>", "<|repo_name|>"),
    "sep": ("<file_sep>", "<|file_sep|>"),
}


@dataclass(frozen=True)
class FimTokenIds:
    """Token ids of the fill-in-the-middle control tokens; None where the vocab lacks one."""

    pre: int | None = None
    suf: int | None = None
    mid: int | None = None
    pad: int | None = None
    rep: int | None = None
    sep: int | None = None

    @property
    def can_fill_middle(self) -> bool:
        return None not in (self.pre, self.suf, self.mid)

    @property
    def can_use_repo_context(self) -> bool:
        return self.can_fill_middle and self.rep is not None and self.sep is not None

    def control_ids(self) -> frozenset[int]:
        """Every FIM token: generating any of them ends a completion."""
        return frozenset(v for v in asdict(self).values() if v is not None)


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    arch: str
    name: str
    file_type: str
    n_params: int
    n_ctx_train: int
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    size_bytes: int
    fim: FimTokenIds
    notes: tuple[str, ...] = field(default=())

    @property
    def prefix_only(self) -> bool:
        return not self.fim.can_fill_middle

    @property
    def mode_description(self) -> str:
        if self.prefix_only:
            return "prefix-only (no fill-in-the-middle tokens: the text after the caret is not used)"
        return "fill-in-the-middle"

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``inspect --json`` schema."""
        return {
            "path": str(self.path),
            "name": self.name,
            "arch": self.arch,
            "file_type": self.file_type,
            "n_params": self.n_params,
            "n_ctx_train": self.n_ctx_train,
            "n_layer": self.n_layer,
            "n_embd": self.n_embd,
            "n_head": self.n_head,
            "n_head_kv": self.n_head_kv,
            "n_vocab": self.n_vocab,
            "size_bytes": self.size_bytes,
            "fim": asdict(self.fim),
            "mode": "prefix-only" if self.prefix_only else "fim",
            "notes": list(self.notes),
        }


def file_type_name(header: GGUFHeader) -> str:
    """'Q4_K_M', 'F16'…: from general.file_type, else the most common 2-D tensor type."""
    value = header.metadata.get("general.file_type")
    if isinstance(value, int):
        try:
            return LlamaFileType(value).name.removeprefix("MOSTLY_").replace("ALL_", "")
        except ValueError:
            pass
    counts: dict[int, int] = {}
    for tensor in header.tensors:
        if len(tensor.shape) >= 2:
            counts[tensor.ggml_type] = counts.get(tensor.ggml_type, 0) + tensor.n_elements
    if not counts:
        return "unknown"
    return GGMLQuantizationType(max(counts, key=counts.__getitem__)).name


def _fim_ids(header: GGUFHeader) -> FimTokenIds:
    tokens = header.metadata.get("tokenizer.ggml.tokens")
    by_text: dict[str, int] = {}
    if isinstance(tokens, list):
        wanted = {text for texts in _FIM_TEXTS.values() for text in texts}
        by_text = {text: i for i, text in enumerate(tokens) if text in wanted}
    ids: dict[str, int | None] = {}
    for role, texts in _FIM_TEXTS.items():
        explicit = header.metadata.get(f"tokenizer.ggml.fim_{role}_token_id")
        if isinstance(explicit, int) and explicit >= 0:
            ids[role] = explicit
        else:
            ids[role] = next((by_text[t] for t in texts if t in by_text), None)
    return FimTokenIds(**ids)


def _n_vocab(header: GGUFHeader) -> int:
    tokens = header.metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, list):
        return len(tokens)
    embd = next((t for t in header.tensors if t.name == "token_embd.weight"), None)
    return embd.shape[1] if embd and len(embd.shape) > 1 else 0


def model_info(path: str | os.PathLike[str]) -> ModelInfo:
    """Validate ``path`` and describe the model; raises a ModelFileError for unusable files."""
    header = read_header(path)
    arch = header.architecture
    if arch is None:
        raise UnsupportedModelError("not a usable model: the GGUF file names no architecture (general.architecture)")
    if arch in NON_GENERATIVE_ARCHITECTURES:
        raise UnsupportedModelError(
            f"architecture {arch} is an encoder, not a text generator: it cannot complete code"
        )
    if not header.tensors:
        raise UnsupportedModelError("not a usable model: the GGUF file holds no tensors (a vocabulary-only file?)")
    n_embd = int(header.arch_key("embedding_length", 0))
    n_head_raw = header.arch_key("attention.head_count", 0)
    n_head_kv_raw = header.arch_key("attention.head_count_kv", n_head_raw)
    # Some architectures store per-layer head counts as arrays; the first is representative.
    n_head = int(n_head_raw[0] if isinstance(n_head_raw, list) else n_head_raw)
    n_head_kv = int(n_head_kv_raw[0] if isinstance(n_head_kv_raw, list) else n_head_kv_raw)
    head_dim = int(header.arch_key("attention.key_length", n_embd // n_head if n_head else 0))
    fim = _fim_ids(header)
    notes: list[str] = []
    if arch not in FIM_ARCHITECTURES:
        if fim.can_fill_middle:
            notes.append(f"architecture {arch} is not StarCoder2, but its vocabulary has FIM tokens")
        else:
            notes.append(
                f"architecture {arch} is not a fill-in-the-middle code model we know: "
                "running in prefix-only mode (the text after the caret is not used)"
            )
    elif not fim.can_fill_middle:
        notes.append("the vocabulary lacks FIM tokens: running in prefix-only mode")
    name = header.metadata.get("general.name")
    return ModelInfo(
        path=header.path,
        arch=arch,
        name=name if isinstance(name, str) and name else header.path.stem,
        file_type=file_type_name(header),
        n_params=sum(t.n_elements for t in header.tensors),
        n_ctx_train=int(header.arch_key("context_length", 0)),
        n_layer=int(header.arch_key("block_count", 0)),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=head_dim,
        n_vocab=_n_vocab(header),
        size_bytes=header.file_size,
        fim=fim,
        notes=tuple(notes),
    )
