"""Server profiles, their settings (never a key), key storage and the engine interface."""

from __future__ import annotations

import json
import logging

import pytest

from app.core.engine import Engine
from app.core.engine_api import CompletionEngine
from app.core.remote.errors import RemoteConfigError
from app.core.remote.keys import NO_KEYRING, KeyStore
from app.core.remote.llama_server import LlamaServerEngine
from app.core.remote.openai import OpenAIEngine
from app.core.remote.profile import ServerKind, ServerProfile, parse_url, profiles_from_json, profiles_to_json
from app.core.settings_schema import rule_for, settings_from_values
from tests.remote_servers import MemoryKeyring


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "base"),
    [
        ("http://127.0.0.1:8080", "http", "127.0.0.1", 8080, ""),
        ("https://gpu.example.com/v1/", "https", "gpu.example.com", 443, ""),
        ("http://[::1]:9000/llm", "http", "::1", 9000, "/llm"),
        (" http://localhost ", "http", "localhost", 80, ""),
    ],
)
def test_urls_are_parsed(url: str, scheme: str, host: str, port: int, base: str) -> None:
    endpoint = parse_url(url)
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.base_path) == (scheme, host, port, base)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host", "must start with http:// or https://"),
        ("gpu-box:8080", "must start with http:// or https://"),
        ("http://", "names no host"),
        ("http://host:99999", "not a valid URL"),
        ("http://user:pw@host", "may not contain"),
    ],
)
def test_bad_urls_get_a_clear_message(url: str, message: str) -> None:
    with pytest.raises(RemoteConfigError, match=message):
        ServerProfile("x", url).validate()


@pytest.mark.parametrize(
    ("url", "confirm"),
    [
        ("http://127.0.0.1:8080", False),
        ("http://127.8.9.10", False),
        ("http://localhost:8080", False),
        ("http://[::1]:8080", False),
        ("https://gpu.example.com", False),
        ("http://gpu.example.com:8080", True),
        ("http://192.168.1.20:8080", True),
    ],
)
def test_plain_http_to_another_machine_needs_a_confirmation(url: str, confirm: bool) -> None:
    assert ServerProfile("x", url).needs_plain_http_confirmation is confirm


def test_the_timeout_is_checked() -> None:
    with pytest.raises(RemoteConfigError, match="the timeout must be 0.5 to 3600 s"):
        ServerProfile("x", "http://127.0.0.1", timeout_s=float("nan")).validate()


def test_a_key_never_reaches_the_settings_or_a_log_line() -> None:
    profile = ServerProfile("gpu", "https://gpu.example.com", ServerKind.OPENAI, model="bigcode/starcoder2-15b",
                            api_key="sk-secret-123")
    text = profiles_to_json([profile])
    assert "sk-secret" not in text
    assert "sk-secret" not in repr(profile)
    assert profiles_from_json(text) == [profile]
    assert profiles_from_json(text)[0].api_key is None


def test_settings_keep_good_profiles_drop_damaged_ones_and_any_key(caplog: pytest.LogCaptureFixture) -> None:
    stored = json.dumps([
        {"name": "a", "url": "http://127.0.0.1:8080", "kind": "llama-server", "api_key": "sk-from-a-hand-edit"},
        {"name": "b", "url": "ftp://nope"},
        "not a profile",
        {"name": "c", "url": "https://c.example.com", "kind": "openai", "timeout_s": "12"},
        {"name": "d", "url": "http://127.0.0.1", "kind": "carrier-pigeon"},
    ])
    with caplog.at_level(logging.WARNING, logger="starpad.remote"):
        settings = settings_from_values({"server_profiles": stored})
    profiles = profiles_from_json(settings.server_profiles)
    assert [p.name for p in profiles] == ["a", "c"]
    assert profiles[1].timeout_s == 12.0
    assert "sk-from" not in settings.server_profiles
    assert len([r for r in caplog.records if "dropping a saved server profile" in r.message]) == 3


def test_settings_that_are_not_a_profile_list_fall_back_to_none() -> None:
    assert settings_from_values({"server_profiles": "{broken"}).server_profiles == "[]"
    with pytest.raises(ValueError, match="a JSON list of server profiles"):
        rule_for("server_profiles").coerce('{"name": "a"}')


def test_keys_go_to_the_keyring() -> None:
    backend = MemoryKeyring()
    keys = KeyStore(backend)
    assert keys.persistent and keys.problem is None
    assert keys.set("gpu", "sk-1") is None
    assert backend.stored == {("Starpad", "gpu"): "sk-1"}
    keys.rename("gpu", "gpu-box")
    assert keys.get("gpu-box") == "sk-1"
    assert keys.get("gpu") is None
    keys.delete("gpu-box")
    assert backend.stored == {}


def test_without_a_keyring_keys_live_for_the_session_and_it_is_said() -> None:
    keys = KeyStore(None, detect=False)
    assert not keys.persistent
    assert keys.problem == NO_KEYRING
    assert keys.set("headless", "sk-2") == NO_KEYRING
    assert KeyStore(None, detect=False).get("headless") == "sk-2"  # the same session
    keys.delete("headless")
    assert keys.get("headless") is None


def test_every_engine_offers_what_the_session_comparison_and_evaluation_use() -> None:
    members = [name for name in dir(CompletionEngine) if not name.startswith("_")]
    assert set(members) == {"is_loaded", "n_ctx", "fim_tokens", "build_prompt", "complete", "prefill", "tokenize",
                            "token_text", "reset_cache", "close"}
    for engine_type in (Engine, LlamaServerEngine, OpenAIEngine):
        missing = [name for name in members if not hasattr(engine_type, name)]
        assert missing == [], engine_type.__name__
