"""API keys for server profiles: the system keyring, or this session's memory.

Keys never go into the settings file or a log line. The system keyring (the ``keyring``
library: Secret Service, KWallet, macOS Keychain, Windows Credential Locker) keeps them
across restarts. Where no keyring backend works — a headless Linux box without a Secret
Service — ``KeyStore.problem`` says so and the key is kept in memory until Starpad quits.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger("starpad.remote")

SERVICE = "Starpad"
NO_KEYRING = ("no system keyring is available (on Linux: a Secret Service such as GNOME Keyring or KWallet): "
              "the key is kept for this session only")


class KeyringBackend(Protocol):
    def get_password(self, service: str, username: str) -> str | None: ...

    def set_password(self, service: str, username: str, password: str) -> None: ...

    def delete_password(self, service: str, username: str) -> None: ...


def system_keyring() -> KeyringBackend | None:
    """The keyring backend that would really store something, or None (none, or only the
    "fail"/"null" backends that headless systems end up with)."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        backend: Any = keyring.get_keyring()
        priority = float(getattr(backend, "priority", 0))
    except Exception:  # noqa: BLE001 - a broken keyring configuration is "no keyring"
        log.debug("keyring backend unusable", exc_info=True)
        return None
    if isinstance(backend, fail.Keyring) or priority <= 0:
        return None
    result: KeyringBackend = backend
    return result


class KeyStore:
    """Keys by profile name. ``backend=None`` with ``detect=False``: memory only (tests)."""

    #: Keys kept for this session when there is no keyring (shared by every store).
    _session: dict[str, str] = {}

    def __init__(self, backend: KeyringBackend | None = None, detect: bool = True) -> None:
        self._backend = backend if backend is not None or not detect else system_keyring()

    @property
    def persistent(self) -> bool:
        return self._backend is not None

    @property
    def problem(self) -> str | None:
        """Why keys will not survive a restart (None: they will)."""
        return None if self._backend is not None else NO_KEYRING

    def get(self, profile: str) -> str | None:
        if self._backend is not None:
            try:
                return self._backend.get_password(SERVICE, profile) or None
            except Exception:  # noqa: BLE001 - a locked or broken keyring: no key, not a crash
                log.warning("could not read the key of %s from the keyring", profile)
        return self._session.get(profile)

    def set(self, profile: str, key: str | None) -> str | None:
        """Store (or, for an empty key, forget) a key; returns a problem to show, or None."""
        if not key:
            self.delete(profile)
            return None
        if self._backend is not None:
            try:
                self._backend.set_password(SERVICE, profile, key)
                self._session.pop(profile, None)
                return None
            except Exception as exc:  # noqa: BLE001 - fall back to the session, and say so
                log.warning("could not store the key of %s in the keyring: %s", profile, type(exc).__name__)
                self._session[profile] = key
                return f"the keyring refused the key ({type(exc).__name__}): it is kept for this session only"
        self._session[profile] = key
        return NO_KEYRING

    def delete(self, profile: str) -> None:
        self._session.pop(profile, None)
        if self._backend is not None:
            try:
                self._backend.delete_password(SERVICE, profile)
            except Exception:  # noqa: BLE001 - nothing stored is fine
                pass

    def rename(self, old: str, new: str) -> None:
        key = self.get(old)
        if key is not None and old != new:
            self.set(new, key)
            self.delete(old)
