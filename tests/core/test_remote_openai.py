"""OpenAIEngine end to end against llama-cpp-python's OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.engine import CancelToken, CompletionRequest, Engine
from app.core.remote.errors import RemoteAuthError, RemoteServerError
from app.core.remote.factory import connect
from app.core.remote.openai import OpenAIEngine
from app.core.remote.profile import ServerKind, ServerProfile
from tests.remote_servers import Fault, OpenAIServer, Proxy

PREFIX = "def fibonacci(n):\n    if n < 2:\n        return n\n    return "
SUFFIX = "\n\n\nprint(fibonacci(10))\n"


def profile(url: str, **kwargs: object) -> ServerProfile:
    return ServerProfile("test", url, ServerKind.OPENAI, timeout_s=30, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenAIServer]:
    with OpenAIServer(tiny_model, tmp_path_factory.mktemp("openai-server")) as running:
        yield running


@pytest.fixture()
def remote(server: OpenAIServer) -> Iterator[OpenAIEngine]:
    engine = connect(profile(server.url))
    assert isinstance(engine, OpenAIEngine)
    yield engine
    engine.close()


def test_connect_takes_the_first_model_when_none_is_named(remote: OpenAIEngine, tiny_model: Path) -> None:
    assert remote.is_loaded
    assert remote.model_name == str(tiny_model)  # llama_cpp.server names the model by its path
    assert remote.fim_tokens.can_fill_middle


def test_the_fim_prompt_goes_as_text_with_the_special_tokens(server: OpenAIServer, engine: Engine) -> None:
    request = CompletionRequest(PREFIX, SUFFIX, max_tokens=8)
    with Proxy(server.port) as proxy:
        remote = connect(profile(proxy.url))
        assert isinstance(remote, OpenAIEngine)
        result = remote.complete(request)
    sent = proxy.requests_to("/v1/completions")
    assert len(sent) == 1
    assert sent[0]["prompt"] == f"<fim_prefix><fim_suffix>{SUFFIX}<fim_middle>{PREFIX}"
    assert sent[0]["stream"] is True
    assert "<fim_middle>" in sent[0]["stop"]  # type: ignore[operator]
    assert result.stop_reason != "cancelled"
    # The server reads that text as exactly the ids the local engine builds: special tokens included.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/extras/tokenize", json.dumps({"input": sent[0]["prompt"]}),
                 {"Content-Type": "application/json"})
    assert json.loads(conn.getresponse().read())["tokens"] == engine.build_prompt(request).tokens
    conn.close()


def test_a_greedy_completion_streams_end_to_end(remote: OpenAIEngine, engine: Engine) -> None:
    pieces: list[str] = []
    request = CompletionRequest(PREFIX, SUFFIX, max_tokens=12)
    local = engine.complete(request)
    served = remote.complete(request, on_text=pieces.append)
    assert "".join(pieces).startswith(served.text)  # the end that repeats the suffix may be cut
    assert served.stop_reason in ("max_tokens", "eos", "suffix_repeat")
    print(f"OpenAI server vs local greedy: same text {served.text == local.text} "
          f"({served.text!r} / {local.text!r})")


def test_single_line_mode_stops_at_the_first_line(remote: OpenAIEngine) -> None:
    request = CompletionRequest(PREFIX, SUFFIX, max_tokens=48, single_line=True)
    result = remote.complete(request)
    assert "\n" not in result.text.strip("\n")


def test_cancel_returns_cancelled(remote: OpenAIEngine) -> None:
    cancel = CancelToken()
    cancel.cancel()
    result = remote.complete(CompletionRequest(PREFIX, SUFFIX, max_tokens=8), cancel=cancel)
    assert result.stop_reason == "cancelled"
    assert result.text == ""


def test_a_refused_key_and_a_missing_model_are_clear(server: OpenAIServer) -> None:
    with Proxy(server.port, Fault.STATUS, status=401, routes=("/v1/completions",)) as proxy:
        remote = connect(profile(proxy.url, api_key="sk-wrong"))
        with pytest.raises(RemoteAuthError, match=r"\(401\): check the API key"):
            remote.complete(CompletionRequest(PREFIX, SUFFIX, max_tokens=4))
    with pytest.raises(RemoteServerError, match="not bigcode/starcoder2-15b"):
        connect(profile(server.url, model="bigcode/starcoder2-15b"))
