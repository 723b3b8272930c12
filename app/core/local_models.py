"""Find GGUF models already on this machine: the Hugging Face cache and our own folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import ModelFileError
from app.core.model_info import file_type_name
from app.core.gguf_header import read_header


@dataclass(frozen=True)
class LocalModel:
    path: Path
    size_bytes: int
    quant: str
    repo_id: str | None

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path), "size_bytes": self.size_bytes, "quant": self.quant, "repo": self.repo_id}


def user_models_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "Starpad" / "models"


def find_local_models(extra_dirs: tuple[Path, ...] = ()) -> list[LocalModel]:
    """Every readable GGUF in the HF cache snapshots and the given folders (headers only)."""
    from app.core.download import hf_cache_dir

    found: dict[Path, LocalModel] = {}
    candidates: list[tuple[Path, str | None]] = []
    cache = hf_cache_dir()
    if cache.is_dir():
        for repo_dir in cache.glob("models--*"):
            repo_name = repo_dir.name.removeprefix("models--").replace("--", "/")
            candidates += [(p, repo_name) for p in repo_dir.glob("snapshots/*/**/*.gguf")]
    for folder in (user_models_dir(), *extra_dirs):
        if folder.is_dir():
            candidates += [(p, None) for p in folder.rglob("*.gguf")]
    for path, repo_id in candidates:
        real = path.resolve()
        if real in found:
            continue
        try:
            header = read_header(path)
        except ModelFileError:
            continue  # partial or broken files are not offered
        found[real] = LocalModel(path, header.file_size, file_type_name(header), repo_id)
    return sorted(found.values(), key=lambda m: str(m.path))
