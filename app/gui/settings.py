"""User settings: declared once, with defaults, persisted with QSettings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

from PySide6.QtCore import QSettings

ORGANIZATION = "Starpad"
APPLICATION = "Starpad"


@dataclass
class Settings:
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 0.95
    single_line: bool = False
    debounce_ms: int = 250
    threads: int = 0  # 0: physical cores
    n_ctx: int = 16384
    auto_complete: bool = True
    layout: str = "spm"
    use_repo_context: bool = False
    indent_with_spaces: bool = True
    indent_width: int = 4
    font_size: int = 11
    dark_theme: bool = False
    show_inspector: bool = False
    last_model: str = ""
    download_dir: str = ""  # "" = the Hugging Face cache
    recent_files: list[str] = field(default_factory=list)


def _coerce(value: object, default: object) -> object:
    """QSettings hands back strings on some platforms: convert to the field's type."""
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int(value)  # type: ignore[arg-type]
    if isinstance(default, float):
        return float(value)  # type: ignore[arg-type]
    if isinstance(default, list):
        if value in (None, ""):
            return []
        return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    return str(value)


def load_settings(store: QSettings | None = None) -> Settings:
    store = store or QSettings(ORGANIZATION, APPLICATION)
    settings = Settings()
    for f in fields(Settings):
        if store.contains(f.name):
            try:
                setattr(settings, f.name, _coerce(store.value(f.name), getattr(settings, f.name)))
            except (TypeError, ValueError):
                pass  # a damaged value falls back to its default
    return settings


def save_settings(settings: Settings, store: QSettings | None = None) -> None:
    store = store or QSettings(ORGANIZATION, APPLICATION)
    for key, value in dataclasses.asdict(settings).items():
        store.setValue(key, value)
    store.sync()
