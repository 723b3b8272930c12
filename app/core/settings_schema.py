"""User settings, declared once: name, default and the values each may take.

The settings file is user-editable and outlives versions of Starpad, so anything can be
in it: ``debounce_ms=99999999999`` (beyond Qt's 32-bit ints: every start aborted),
``layout=bogus`` (every completion failed), ``temperature=nan``. Each field is therefore
validated on its own when loading: a bad value falls back to its default with a note on
the ``starpad.settings`` logger, and every other field keeps the user's value.

This module is Qt-free (``app.gui.settings`` is the QSettings adapter), so the rules are
tested without a display; the preferences dialog reads its spin-box ranges from here.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.core.limits import MAX_N_CTX, MAX_NEW_TOKENS, MAX_TEMPERATURE, MAX_THREADS, MIN_N_CTX

log = logging.getLogger("starpad.settings")

_RULE = "starpad.rule"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class Rule(Protocol):
    """Turns a stored value (often a string: QSettings' INI format has no types) into a
    valid field value, or raises ``ValueError`` saying what was expected."""

    def coerce(self, raw: object) -> Any: ...


@dataclass(frozen=True)
class IntRange:
    lo: int
    hi: int

    def coerce(self, raw: object) -> int:
        value: int
        if isinstance(raw, bool):
            raise ValueError(self._expected())
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, float) and raw.is_integer():
            value = int(raw)
        elif isinstance(raw, str):
            try:
                value = int(raw.strip())
            except ValueError:
                raise ValueError(self._expected()) from None
        else:
            raise ValueError(self._expected())
        if not self.lo <= value <= self.hi:
            raise ValueError(self._expected())
        return value

    def _expected(self) -> str:
        return f"an integer from {self.lo} to {self.hi}"


@dataclass(frozen=True)
class FloatRange:
    lo: float
    hi: float
    #: True: ``lo`` itself is not allowed (top-p of 0 keeps no token at all).
    lo_open: bool = False

    def coerce(self, raw: object) -> float:
        if isinstance(raw, bool):
            raise ValueError(self._expected())
        try:
            value = float(raw.strip()) if isinstance(raw, str) else float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            raise ValueError(self._expected()) from None
        above_lo = value > self.lo if self.lo_open else value >= self.lo
        if not (math.isfinite(value) and above_lo and value <= self.hi):
            raise ValueError(self._expected())
        return value

    def _expected(self) -> str:
        low = "above" if self.lo_open else "from"
        return f"a number {low} {self.lo:g} to {self.hi:g}"


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]

    def coerce(self, raw: object) -> str:
        value = raw.strip().lower() if isinstance(raw, str) else ""
        if value not in self.values:
            raise ValueError("one of " + ", ".join(self.values))
        return value


@dataclass(frozen=True)
class Flag:
    def coerce(self, raw: object) -> bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise ValueError("true or false")


@dataclass(frozen=True)
class Text:
    def coerce(self, raw: object) -> str:
        if raw is None:
            return ""
        if isinstance(raw, str):
            return raw
        if isinstance(raw, (list, tuple)) and all(isinstance(v, str) for v in raw):
            # QSettings' INI format splits an unquoted ``a, b`` into a list.
            return ", ".join(raw)
        raise ValueError("text")


@dataclass(frozen=True)
class TextList:
    def coerce(self, raw: object) -> list[str]:
        if raw is None or raw == "":
            return []
        if isinstance(raw, str):  # QSettings hands back a one-element list as a plain string
            return [raw]
        if isinstance(raw, (list, tuple)) and all(isinstance(v, str) for v in raw):
            return list(raw)
        raise ValueError("a list of text")


@dataclass(frozen=True)
class ServerProfiles:
    """Remote server profiles as JSON text (``app.core.remote.profile``). A damaged profile is
    dropped on its own; an API key is never kept here, whatever the file says (keys live in
    the system keyring)."""

    def coerce(self, raw: object) -> str:
        from app.core.remote.profile import profiles_from_json, profiles_to_json

        text = Text().coerce(raw)
        try:
            return profiles_to_json(profiles_from_json(text))
        except ValueError:
            raise ValueError("a JSON list of server profiles") from None


def _setting(default: Any, rule: Rule) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={_RULE: rule})
    return field(default=default, metadata={_RULE: rule})


@dataclass
class Settings:
    """Every user setting with its default and its valid values (the single declaration)."""

    max_tokens: int = _setting(64, IntRange(1, MAX_NEW_TOKENS))
    temperature: float = _setting(0.0, FloatRange(0.0, MAX_TEMPERATURE))
    top_p: float = _setting(0.95, FloatRange(0.0, 1.0, lo_open=True))
    single_line: bool = _setting(False, Flag())
    debounce_ms: int = _setting(250, IntRange(0, 5000))
    threads: int = _setting(0, IntRange(0, MAX_THREADS))  # 0: physical cores
    #: The engine also checks it against the model's trained context at load.
    n_ctx: int = _setting(16384, IntRange(MIN_N_CTX, MAX_N_CTX))
    auto_complete: bool = _setting(True, Flag())
    layout: str = _setting("spm", Choice(("spm", "psm")))
    #: KV-cache reuse: "fast" moves cached tokens (approximate), "exact" only reuses what a cold run computes.
    cache_reuse: str = _setting("fast", Choice(("fast", "exact")))
    use_repo_context: bool = _setting(False, Flag())
    indent_with_spaces: bool = _setting(True, Flag())
    indent_width: int = _setting(4, IntRange(1, 16))
    font_size: int = _setting(11, IntRange(6, 72))
    dark_theme: bool = _setting(False, Flag())
    show_inspector: bool = _setting(False, Flag())
    #: Open the last session's folder, tabs and carets again at start (app.core.workspace.session_state).
    restore_session: bool = _setting(True, Flag())
    last_model: str = _setting("", Text())
    download_dir: str = _setting("", Text())  # "" = the Hugging Face cache
    #: Layers llama.cpp offloads to the GPU: -1 auto (as many as fit in free VRAM), 0 none,
    #: 999 all (app.core.offload).
    n_gpu_layers: int = _setting(-1, IntRange(-1, 999))
    #: The usability target the model dialog recommends by (app.core.speed.SpeedTarget).
    target_gen_tps: float = _setting(8.0, FloatRange(0.0, 1000.0, lo_open=True))
    target_prompt_seconds: float = _setting(30.0, FloatRange(0.0, 3600.0, lo_open=True))
    recent_files: list[str] = _setting([], TextList())
    #: Remote servers (Model → Models… → Servers): name, URL, kind, model, CA bundle, timeout.
    #: Only a profile chosen there sends code anywhere; keys are in the keyring, not here.
    server_profiles: str = _setting("[]", ServerProfiles())


def rule_for(name: str) -> Rule:
    """The rule of one field (``KeyError`` for a name that is not a setting)."""
    for f in dataclasses.fields(Settings):
        if f.name == name:
            rule: Rule = f.metadata[_RULE]
            return rule
    raise KeyError(name)


def int_range(name: str) -> tuple[int, int]:
    """(lo, hi) of an integer setting, e.g. for a spin box."""
    rule = rule_for(name)
    if not isinstance(rule, IntRange):
        raise TypeError(f"{name} is not an integer setting")
    return rule.lo, rule.hi


def float_range(name: str) -> tuple[float, float]:
    """(lo, hi) of a number setting; an open lower bound is given as is (caller nudges it)."""
    rule = rule_for(name)
    if not isinstance(rule, FloatRange):
        raise TypeError(f"{name} is not a number setting")
    return rule.lo, rule.hi


def setting_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(Settings))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def settings_from_values(values: Mapping[str, object]) -> Settings:
    """Build settings from stored values, field by field.

    A key that is missing keeps its default; a value its rule refuses falls back to the
    default and is logged (one line per field); unknown keys (from newer or older
    versions) are ignored.
    """
    settings = Settings()
    for f in dataclasses.fields(Settings):
        if f.name not in values:
            continue
        raw = values[f.name]
        try:
            setattr(settings, f.name, f.metadata[_RULE].coerce(raw))
        except ValueError as exc:
            log.warning("setting %s=%s is not %s: using the default %r", f.name, _short(raw), exc,
                        getattr(settings, f.name))
    return settings


def problems(settings: Settings) -> list[str]:
    """What is wrong with a settings object built in code (empty when all is valid)."""
    found: list[str] = []
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        try:
            f.metadata[_RULE].coerce(value)
        except ValueError as exc:
            found.append(f"{f.name}={_short(value)} is not {exc}")
    return found


def values_to_store(settings: Settings) -> Iterable[tuple[str, object]]:
    """(key, value) pairs to persist, in declaration order."""
    return dataclasses.asdict(settings).items()
