"""A remote server profile: where the model runs and how to talk to it.

Profiles are settings (name, URL, kind, model, CA bundle, timeout); the API key never
is: it lives in the system keyring (the app), ``STARPAD_API_KEY`` (the CLI) or, where no
keyring exists, in memory for the session only. ``ServerProfile.api_key`` is therefore
excluded from ``to_settings`` and from ``repr`` (so it cannot reach a log line).
"""

from __future__ import annotations

import enum
import ipaddress
import json
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from app.core.remote.errors import RemoteConfigError

DEFAULT_TIMEOUT_S = 30.0
MIN_TIMEOUT_S = 0.5
MAX_TIMEOUT_S = 3600.0
log = logging.getLogger("starpad.remote")

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class ServerKind(str, enum.Enum):
    LLAMA_SERVER = "llama-server"
    OPENAI = "openai"

    @property
    def label(self) -> str:
        return "llama.cpp llama-server" if self is ServerKind.LLAMA_SERVER else "OpenAI-compatible (/v1/completions)"


@dataclass(frozen=True)
class Endpoint:
    """A parsed base URL: ``scheme://host:port/base``."""

    scheme: str
    host: str
    port: int
    base_path: str

    @property
    def is_tls(self) -> bool:
        return self.scheme == "https"

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)

    def path(self, route: str) -> str:
        return self.base_path.rstrip("/") + route


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: code sent there never leaves the machine."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def parse_url(url: str) -> Endpoint:
    """``http(s)://host[:port][/base]``; raises ``RemoteConfigError`` with what is wrong."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise RemoteConfigError(f"the server address {text!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise RemoteConfigError(f"the server address {text!r} must start with http:// or https://")
    if not parts.hostname:
        raise RemoteConfigError(f"the server address {text!r} names no host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise RemoteConfigError(
            f"the server address {text!r} may not contain a query, fragment or user name (keys go in the key field)"
        )
    base = parts.path.rstrip("/")
    # People paste the OpenAI base including /v1; the routes add it themselves.
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    default_port = 443 if parts.scheme == "https" else 80
    return Endpoint(parts.scheme, parts.hostname, port or default_port, base)


@dataclass(frozen=True)
class ServerProfile:
    name: str
    url: str
    kind: ServerKind = ServerKind.LLAMA_SERVER
    #: None: the server's first model (``/v1/models``, ``/props``).
    model: str | None = None
    #: A PEM file of extra certificate authorities for https (a company CA); None: the system's.
    ca_bundle: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    #: Never persisted, never printed (see the module docstring).
    api_key: str | None = field(default=None, repr=False, compare=False)

    @property
    def endpoint(self) -> Endpoint:
        return parse_url(self.url)

    @property
    def host(self) -> str:
        endpoint = self.endpoint
        default = 443 if endpoint.is_tls else 80
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        return host if endpoint.port == default else f"{host}:{endpoint.port}"

    @property
    def needs_plain_http_confirmation(self) -> bool:
        """Plain http:// to another machine sends code (and any key) readable on the way."""
        endpoint = self.endpoint
        return not endpoint.is_tls and not endpoint.is_loopback

    def validate(self) -> ServerProfile:
        """Raise ``RemoteConfigError`` for a profile that cannot work; return it unchanged."""
        if not self.name.strip():
            raise RemoteConfigError("a server profile needs a name")
        self.endpoint  # noqa: B018 - parses, raising a clear error
        if not (math.isfinite(self.timeout_s) and MIN_TIMEOUT_S <= self.timeout_s <= MAX_TIMEOUT_S):
            raise RemoteConfigError(
                f"the timeout must be {MIN_TIMEOUT_S:g} to {MAX_TIMEOUT_S:g} s, not {self.timeout_s}"
            )
        return self

    def with_key(self, api_key: str | None) -> ServerProfile:
        return replace(self, api_key=api_key or None)

    def with_model(self, model: str | None) -> ServerProfile:
        return replace(self, model=model or None)

    def to_settings(self) -> dict[str, Any]:
        """What a settings file may hold: everything but the key."""
        return {"name": self.name, "url": self.url, "kind": self.kind.value, "model": self.model or "",
                "ca_bundle": self.ca_bundle or "", "timeout_s": self.timeout_s}

    @classmethod
    def from_settings(cls, data: dict[str, Any]) -> ServerProfile:
        """The inverse of ``to_settings``; raises ``RemoteConfigError``/``ValueError`` on bad data."""
        try:
            kind = ServerKind(str(data.get("kind", ServerKind.LLAMA_SERVER.value)))
            timeout = float(data.get("timeout_s", DEFAULT_TIMEOUT_S))
        except (TypeError, ValueError) as exc:
            raise RemoteConfigError(f"a saved server profile is damaged ({exc})") from None
        profile = cls(
            name=str(data.get("name", "")), url=str(data.get("url", "")), kind=kind,
            model=str(data.get("model") or "") or None, ca_bundle=str(data.get("ca_bundle") or "") or None,
            timeout_s=timeout,
        )
        return profile.validate()


def profiles_from_json(text: str) -> list[ServerProfile]:
    """Profiles from the settings' JSON text; a damaged entry is dropped (and logged), the
    others kept. Raises ``ValueError`` when the text is not a JSON list at all."""
    data = json.loads(text) if text.strip() else []
    if not isinstance(data, list):
        raise ValueError("a JSON list of server profiles")
    profiles: list[ServerProfile] = []
    for entry in data:
        try:
            if not isinstance(entry, dict):
                raise RemoteConfigError(f"{entry!r} is not a profile")
            profile = ServerProfile.from_settings(entry)
        except RemoteConfigError as exc:
            log.warning("dropping a saved server profile: %s", exc)
            continue
        if all(p.name != profile.name for p in profiles):
            profiles.append(profile)
    return profiles


def profiles_to_json(profiles: list[ServerProfile]) -> str:
    """The settings' JSON text: never a key (``to_settings`` leaves it out)."""
    return json.dumps([p.to_settings() for p in profiles], ensure_ascii=False, sort_keys=True)
