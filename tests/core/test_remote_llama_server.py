"""LlamaServerEngine against a real llama-server on 127.0.0.1 serving the tiny StarCoder2."""

from __future__ import annotations

import dataclasses
import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.core.engine import CancelToken, CompletionRequest, Engine, SamplingParams
from app.core.fim import Layout
from app.core.remote.errors import (
    NoFimTokensError, RemoteAuthError, RemoteConfigError, RemoteProtocolError, RemoteServerError, RemoteTimeoutError,
    ServerBusyError, ServerUnreachableError,
)
from app.core.remote.factory import connect
from app.core.remote.llama_server import LlamaServerEngine
from app.core.remote.profile import ServerKind, ServerProfile
from tests.remote_servers import Fault, LlamaServer, Proxy, free_port, require_llama_server, self_signed_certificate

PREFIX = "def fibonacci(n):\n    if n < 2:\n        return n\n    return "
SUFFIX = "\n\n\nprint(fibonacci(10))\n"


def profile(url: str, timeout_s: float = 20.0) -> ServerProfile:
    return ServerProfile("test", url, ServerKind.LLAMA_SERVER, timeout_s=timeout_s)


@pytest.fixture(scope="module")
def binary() -> Path:
    return require_llama_server()


@pytest.fixture(scope="module")
def server(binary: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    with LlamaServer(binary, tiny_model, tmp_path_factory.mktemp("llama-server")) as running:
        yield running


@pytest.fixture()
def remote(server: LlamaServer) -> Iterator[LlamaServerEngine]:
    engine = connect(profile(server.url))
    assert isinstance(engine, LlamaServerEngine)
    yield engine
    engine.close()


def x_forever(engine: Engine, max_tokens: int) -> CompletionRequest:
    """Random weights may end a completion at once; forcing "x" makes a long stream."""
    x = engine.tokenize("x")[0]
    return CompletionRequest(PREFIX, SUFFIX, max_tokens=max_tokens, sampling=SamplingParams(logit_bias=((x, 1000.0),)))


def common_prefix(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_connect_reads_the_model_its_context_and_fim_tokens(remote: LlamaServerEngine, engine: Engine,
                                                            server: LlamaServer, tiny_model: Path) -> None:
    assert remote.is_loaded
    assert remote.n_ctx == 4096
    assert remote.fim_tokens == engine.fim_tokens
    assert remote.model_name == str(tiny_model)  # llama-server names it by its path
    assert remote.describe().label == f"Remote: 127.0.0.1:{server.port} · {tiny_model.name}"
    assert remote.describe().is_loopback


@pytest.mark.parametrize("layout", [Layout.SPM, Layout.PSM])
@pytest.mark.parametrize("prefix_lines", [4, 3000])  # 3000 lines must be cut to fit 4096 tokens
def test_the_server_receives_exactly_the_prompt_ids_the_local_engine_would_evaluate(
    server: LlamaServer, engine: Engine, layout: Layout, prefix_lines: int
) -> None:
    prefix = "".join(f"value_{i} = compute({i}, 'αβγ')  # <fim_prefix> stays text\n" for i in range(prefix_lines))
    request = CompletionRequest(prefix + PREFIX, SUFFIX, layout, max_tokens=4, path="pkg/fib.py")
    with Proxy(server.port) as proxy:
        remote = connect(profile(proxy.url))
        result = remote.complete(request)
    expected = engine.build_prompt(request).tokens
    sent = proxy.requests_to("/completion")
    assert len(sent) == 1
    assert sent[0]["prompt"] == expected
    assert sent[0]["cache_prompt"] is True
    assert result.prompt.tokens == expected
    assert result.stats.prompt_tokens == len(expected)
    assert (result.prompt.prefix_chars_dropped > 0) == (prefix_lines > 100)


def test_a_greedy_completion_agrees_with_the_local_engine_on_a_cold_prompt(
    remote: LlamaServerEngine, engine: Engine
) -> None:
    request = CompletionRequest(PREFIX, SUFFIX, max_tokens=24)
    engine.reset_cache()
    local = engine.complete(request)
    remote.reset_cache()
    served = remote.complete(request)
    assert served.stats.cached_tokens == 0  # cold: the server reused nothing
    assert served.stats.evaluated == len(served.prompt.tokens)
    assert served.prompt.tokens == local.prompt.tokens
    assert served.tokens
    # Every token the server chose is the local engine's greedy choice after the same
    # tokens, up to a near-tie (kernels may differ in the last bits by build and batch shape).
    prompt = local.prompt.tokens
    scores = engine.score(prompt, served.tokens)
    gaps = [
        engine.score(prompt + list(served.tokens[:i]), [s.argmax])[0].logprob - s.logprob
        for i, s in enumerate(scores)
    ]
    assert max(gaps) < 1e-3
    agreement = sum(s.argmax == s.target for s in scores) / len(scores)
    print(f"greedy agreement server/local: {agreement:.0%} of {len(scores)} tokens; "
          f"same text: {served.text == local.text}")


def test_a_keystroke_after_a_completion_reuses_the_server_cache(remote: LlamaServerEngine) -> None:
    first = remote.complete(CompletionRequest(PREFIX, SUFFIX, max_tokens=4, document="fib.py"))
    second = remote.complete(CompletionRequest(PREFIX + "f", SUFFIX, max_tokens=4, document="fib.py"))
    shared = common_prefix(first.prompt.tokens, second.prompt.tokens)
    assert shared >= len(first.prompt.tokens) - 2
    assert second.stats.cached_tokens >= shared - 1
    assert second.stats.evaluated == second.stats.prompt_tokens - second.stats.cached_tokens
    assert second.stats.evaluated <= 3


def test_prefill_fills_the_server_cache_for_the_completion(remote: LlamaServerEngine) -> None:
    request = CompletionRequest(PREFIX + "fibonacci(n - 1) + ", SUFFIX, max_tokens=4, document="fib.py")
    prefilled = remote.prefill(request)
    assert not prefilled.cancelled
    assert prefilled.stats.prompt_tokens == len(prefilled.prompt.tokens) - 1
    completed = remote.complete(request)
    assert completed.stats.cached_tokens == len(completed.prompt.tokens) - 1
    assert completed.stats.evaluated == 1


def test_cancel_closes_the_stream_at_once_and_the_server_stays_usable(
    remote: LlamaServerEngine, engine: Engine
) -> None:
    cancel = CancelToken()
    pieces: list[str] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.cancel()

    result = remote.complete(x_forever(engine, 2000), on_text, cancel)
    assert result.stop_reason == "cancelled"
    assert len(pieces) == 3
    assert result.text == "".join(pieces)
    after = remote.complete(x_forever(engine, 4))
    assert after.stop_reason == "max_tokens"
    assert after.text == "xxxx"


def test_a_cancel_while_waiting_for_the_first_token_returns_promptly(server: LlamaServer, engine: Engine) -> None:
    with Proxy(server.port, Fault.STALL, routes=("/completion",)) as proxy:
        remote = connect(profile(proxy.url, timeout_s=30))
        cancel = CancelToken()
        threading.Timer(0.3, cancel.cancel).start()
        started = time.monotonic()
        result = remote.complete(x_forever(engine, 8), cancel=cancel)
        elapsed = time.monotonic() - started
    assert result.stop_reason == "cancelled"
    assert elapsed < 2.0


def test_the_server_killed_mid_stream_is_a_clear_error(
    binary: Path, tiny_model: Path, tmp_path: Path, engine: Engine
) -> None:
    with LlamaServer(binary, tiny_model, tmp_path) as own:
        remote = connect(profile(own.url))
        killed: list[bool] = []

        def on_text(_piece: str) -> None:
            if not killed:
                own.kill()
                killed.append(True)

        with pytest.raises(RemoteProtocolError, match="broke off|ended before"):
            remote.complete(x_forever(engine, 2000), on_text)
        with pytest.raises(ServerUnreachableError, match=f"cannot reach the server at 127.0.0.1:{own.port}"):
            remote.complete(x_forever(engine, 4))


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        (Fault.DROP_AFTER_HEADERS, RemoteProtocolError, "broke off|ended before the completion did"),
        (Fault.DROP_MID_STREAM, RemoteProtocolError, "broke off|ended before the completion did"),
        (Fault.GARBAGE, RemoteProtocolError, "gave no valid HTTP answer"),
        (Fault.GARBAGE_STREAM, RemoteProtocolError, "not a text stream|not an event stream"),
    ],
)
def test_a_faulty_proxy_gives_a_clear_error_and_no_hang(
    server: LlamaServer, engine: Engine, fault: Fault, error: type[Exception], message: str
) -> None:
    with Proxy(server.port, fault, routes=("/completion",)) as proxy:
        remote = connect(profile(proxy.url, timeout_s=5))
        started = time.monotonic()
        with pytest.raises(error, match=message):
            remote.complete(x_forever(engine, 8))
    assert time.monotonic() - started < 4.0


def test_a_server_slower_than_the_timeout_is_a_timeout(server: LlamaServer, engine: Engine) -> None:
    with Proxy(server.port, Fault.STALL, routes=("/completion",)) as proxy:
        remote = connect(profile(proxy.url, timeout_s=0.5))
        started = time.monotonic()
        with pytest.raises(RemoteTimeoutError, match=r"within 0.5 s \(timeout setting\)"):
            remote.complete(x_forever(engine, 8))
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (401, RemoteAuthError, r"refused the request \(401\): check the API key: proxy says 401"),
        (403, RemoteAuthError, r"\(403\)"),
        (500, RemoteServerError, r"answered /completion with an error \(500\): proxy says 500"),
    ],
)
def test_error_statuses_become_one_clear_line(
    server: LlamaServer, engine: Engine, status: int, error: type[Exception], message: str
) -> None:
    with Proxy(server.port, Fault.STATUS, status=status, routes=("/completion",)) as proxy:
        remote = connect(profile(proxy.url))
        with pytest.raises(error, match=message) as caught:
            remote.complete(x_forever(engine, 4))
        assert len(proxy.requests_to("/completion")) == 1  # not retried
    assert "\n" not in str(caught.value)


def test_a_busy_server_is_retried_with_backoff(server: LlamaServer, engine: Engine) -> None:
    with Proxy(server.port, Fault.STATUS, status=503, routes=("/completion",), fail_times=2) as proxy:
        remote = connect(profile(proxy.url))
        result = remote.complete(x_forever(engine, 4))
        assert len(proxy.requests_to("/completion")) == 3
    assert result.text == "xxxx"
    with Proxy(server.port, Fault.STATUS, status=503, routes=("/completion",)) as proxy:
        remote = connect(profile(proxy.url))
        with pytest.raises(ServerBusyError, match="still loading"):
            remote.complete(x_forever(engine, 4))
        assert len(proxy.requests_to("/completion")) == 3


def test_a_server_that_is_down_is_reported_quickly() -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(ServerUnreachableError, match=f"cannot reach the server at 127.0.0.1:{port}"):
        connect(profile(f"http://127.0.0.1:{port}"))
    assert time.monotonic() - started < 3.0


def test_a_model_without_fim_tokens_is_refused_with_a_clear_message() -> None:
    class NoFim(BaseHTTPRequestHandler):
        def _answer(self, data: object) -> None:
            body = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            answers = {"/health": {"status": "ok"}, "/v1/models": {"data": [{"id": "chat-model"}]},
                       "/props": {"default_generation_settings": {"n_ctx": 2048}, "total_slots": 1}}
            self._answer(answers.get(self.path, {}))

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers["Content-Length"])
            text = json.loads(self.rfile.read(length))["content"]
            # A vocabulary with no special tokens: "<fim_prefix>" is just characters.
            self._answer({"tokens": [{"id": ord(c), "piece": c} for c in text]})

        def log_message(self, *_args: object) -> None:
            pass

    fake = ThreadingHTTPServer(("127.0.0.1", 0), NoFim)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    try:
        with pytest.raises(NoFimTokensError, match="chat-model on 127.0.0.1:.* has no fill-in-the-middle tokens"):
            connect(profile(f"http://127.0.0.1:{fake.server_port}"))
    finally:
        fake.shutdown()
        fake.server_close()


def test_a_model_the_server_does_not_serve_is_named(server: LlamaServer, tiny_model: Path) -> None:
    with pytest.raises(RemoteServerError, match=f"serves .*{tiny_model.name}, not starcoder2-15b"):
        connect(dataclasses.replace(profile(server.url), model="starcoder2-15b"))


def test_documents_get_their_own_slot_only_while_slots_are_spare(
    binary: Path, tiny_model: Path, tmp_path: Path, engine: Engine
) -> None:
    with LlamaServer(binary, tiny_model, tmp_path, slots=2) as two:
        with Proxy(two.port) as proxy:
            remote = connect(profile(proxy.url))
            assert isinstance(remote, LlamaServerEngine)
            for document in ("a.py", "b.py", "c.py", "a.py"):
                remote.complete(dataclasses.replace(x_forever(engine, 2), document=document))
            slots = [int(str(body["id_slot"])) for body in proxy.requests_to("/completion")]
    assert remote.total_slots == 2
    assert slots[0] != slots[1]
    assert sorted(slots[:2]) == [0, 1]
    assert slots[2] == -1  # no slot to spare: the server chooses
    assert slots[3] == slots[0]


def test_https_with_a_custom_ca_bundle(server: LlamaServer, engine: Engine, tmp_path: Path) -> None:
    made = self_signed_certificate(tmp_path)
    assert made is not None, "the openssl command is needed to make a test certificate"
    cert, key = made
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with Proxy(server.port, tls=context) as proxy:
        url = f"https://127.0.0.1:{proxy.port}"
        with pytest.raises(RemoteProtocolError, match="TLS handshake with 127.0.0.1:.* failed: .*certificate"):
            connect(profile(url))  # the system's authorities do not know our test CA
        remote = connect(dataclasses.replace(profile(url), ca_bundle=str(cert)))
        result = remote.complete(x_forever(engine, 4))
    assert result.text == "xxxx"
    assert proxy.requests_to("/completion")[0]["prompt"] == result.prompt.tokens


def test_a_ca_bundle_that_is_not_one_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(RemoteConfigError, match="cannot use the CA bundle"):
        connect(dataclasses.replace(profile("https://127.0.0.1:9"), ca_bundle=str(bogus)))
