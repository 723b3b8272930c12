"""User settings persisted with QSettings.

The declaration (names, defaults, valid values) and the validation live in the Qt-free
``app.core.settings_schema``; this module only moves values between QSettings and it.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings

from app.core.settings_schema import Settings, setting_names, settings_from_values, values_to_store

__all__ = ["APPLICATION", "ORGANIZATION", "Settings", "load_settings", "save_settings"]

ORGANIZATION = "Starpad"
APPLICATION = "Starpad"


class _Unreadable:
    """A stored value PySide6 cannot convert: every rule refuses it, so it is logged."""

    def __repr__(self) -> str:
        return "<unreadable>"


def load_settings(store: QSettings | None = None) -> Settings:
    """The stored settings; a value out of range or of the wrong kind falls back to its
    default (logged on ``starpad.settings``) instead of breaking the start."""
    store = store or QSettings(ORGANIZATION, APPLICATION)
    values: dict[str, object] = {}
    for name in setting_names():
        if store.contains(name):
            try:
                values[name] = store.value(name)
            except (TypeError, ValueError, OverflowError, RuntimeError):
                values[name] = _Unreadable()
    return settings_from_values(values)


def save_settings(settings: Settings, store: QSettings | None = None) -> None:
    store = store or QSettings(ORGANIZATION, APPLICATION)
    for key, value in values_to_store(settings):
        store.setValue(key, value)
    store.sync()
