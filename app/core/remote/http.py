"""A small HTTP/1.1 client for JSON requests and server-sent event streams.

Why not urllib or httpx? Three things decide the editor's feel and none is easy there:

* **cancel closes the stream at once**: a newer keystroke supersedes a request, and the
  thread waiting on the socket must stop now, not when the server sends its next token.
  A watcher shuts the socket down the moment the ``CancelToken`` is set, which wakes the
  blocked read (and tells the server to stop generating);
* **the timeout is a silence limit**: a streamed completion may run for a minute, but a
  server that sends nothing for ``timeout_s`` is treated as stalled;
* **every failure is one clear sentence** (``app.core.remote.errors``), with retries and
  backoff only where another try can help: nothing reached the server, or it said 503.

Each request uses its own connection: a stream that is cancelled mid-way cannot be reused.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from app.core.remote.errors import (
    RemoteAuthError, RemoteConfigError, RemoteError, RemoteProtocolError, RemoteServerError, RemoteTimeoutError,
    ServerBusyError, ServerUnreachableError,
)
from app.core.remote.profile import Endpoint

log = logging.getLogger("starpad.remote")

#: Tries for connect errors and 503 (loading/busy), waiting BACKOFF_S × 2^n between them.
RETRIES = 3
BACKOFF_S = 0.25
#: How often the cancel watcher looks at the token (ms granularity is plenty for a keystroke).
CANCEL_POLL_S = 0.01
MAX_ERROR_CHARS = 200


class Cancellable(Protocol):
    @property
    def cancelled(self) -> bool: ...


class StreamCancelled(Exception):
    """The caller's cancel token closed the stream (not an error: a newer request won)."""


@dataclass(frozen=True)
class HttpSettings:
    timeout_s: float
    ca_bundle: str | None = None
    api_key: str | None = None
    retries: int = RETRIES
    backoff_s: float = BACKOFF_S


class HttpClient:
    def __init__(self, endpoint: Endpoint, settings: HttpSettings) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self._ssl: ssl.SSLContext | None = None
        if endpoint.is_tls:
            try:
                self._ssl = ssl.create_default_context(cafile=settings.ca_bundle or None)
            except (OSError, ssl.SSLError) as exc:
                raise RemoteConfigError(f"cannot use the CA bundle {settings.ca_bundle}: {exc}") from None

    # ------------------------------------------------------------ public
    def get_json(self, route: str, cancel: Cancellable | None = None) -> Any:
        return self._json("GET", route, None, cancel)

    def post_json(self, route: str, body: dict[str, Any], cancel: Cancellable | None = None) -> Any:
        return self._json("POST", route, body, cancel)

    @contextmanager
    def stream(
        self, route: str, body: dict[str, Any], cancel: Cancellable | None = None
    ) -> Iterator[Iterator[dict[str, Any]]]:
        """POST ``body`` and yield the stream's JSON events (``[DONE]`` ends it).

        Raises ``StreamCancelled`` from the iterator when ``cancel`` fires, a
        ``RemoteError`` for everything else; the connection is closed on exit.
        """
        conn, response = self._open("POST", route, body, cancel, accept="text/event-stream")
        watcher = _CancelWatcher(conn, cancel)
        try:
            yield _sse_events(response, watcher, self.settings.timeout_s, self._where())
        finally:
            watcher.stop()
            conn.close()

    # ----------------------------------------------------------- internals
    def _where(self) -> str:
        return f"{self.endpoint.host}:{self.endpoint.port}"

    def _json(self, method: str, route: str, body: dict[str, Any] | None, cancel: Cancellable | None) -> Any:
        conn, response = self._open(method, route, body, cancel, accept="application/json")
        watcher = _CancelWatcher(conn, cancel)
        try:
            data = response.read()
        except TimeoutError:
            raise RemoteTimeoutError(
                f"{self._where()} sent no answer within {self.settings.timeout_s:g} s (timeout setting)"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            if watcher.requested:
                raise StreamCancelled() from None
            raise RemoteProtocolError(f"{self._where()} broke off its answer to {route} ({_short(exc)})") from None
        finally:
            watcher.stop()
            conn.close()
        try:
            return json.loads(data)
        except ValueError:
            raise RemoteProtocolError(
                f"{self._where()} answered {route} with something that is not JSON: {_preview(data)}"
            ) from None

    def _connection(self) -> http.client.HTTPConnection:
        timeout = self.settings.timeout_s
        if self._ssl is not None:
            return http.client.HTTPSConnection(self.endpoint.host, self.endpoint.port, timeout=timeout,
                                               context=self._ssl)
        return http.client.HTTPConnection(self.endpoint.host, self.endpoint.port, timeout=timeout)

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": accept, "User-Agent": "Starpad"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        return headers

    def _open(
        self, method: str, route: str, body: dict[str, Any] | None, cancel: Cancellable | None, accept: str
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send the request and read the status; retries what can be retried."""
        payload = json.dumps(body).encode("utf-8") if body is not None else None
        path = self.endpoint.path(route)
        attempt = 0
        while True:
            try:
                return self._try_open(method, path, route, payload, cancel, accept)
            except RemoteError as exc:
                attempt += 1
                if not exc.retryable or attempt >= max(1, self.settings.retries):
                    raise
                delay = self.settings.backoff_s * 2 ** (attempt - 1)
                log.info("%s %s: %s; retrying in %.2f s", method, route, exc, delay)
                if _sleep_unless_cancelled(delay, cancel):
                    raise StreamCancelled() from None

    def _try_open(
        self, method: str, path: str, route: str, payload: bytes | None, cancel: Cancellable | None, accept: str
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        if cancel is not None and cancel.cancelled:
            raise StreamCancelled()
        conn = self._connection()
        where = self._where()
        try:
            conn.connect()
        except ssl.SSLError as exc:
            conn.close()
            raise RemoteProtocolError(f"the TLS handshake with {where} failed: {_short(exc)}") from None
        except TimeoutError:
            conn.close()
            raise ServerUnreachableError(
                f"{where} did not accept a connection within {self.settings.timeout_s:g} s"
            ) from None
        except OSError as exc:
            conn.close()
            raise ServerUnreachableError(f"cannot reach the server at {where} ({_short(exc)})") from None
        watcher = _CancelWatcher(conn, cancel)
        try:
            conn.request(method, path, body=payload, headers=self._headers(accept))
            response = conn.getresponse()
        except TimeoutError:
            conn.close()
            raise RemoteTimeoutError(
                f"{where} sent no answer within {self.settings.timeout_s:g} s (timeout setting)"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            if watcher.requested:
                raise StreamCancelled() from None
            raise RemoteProtocolError(f"{where} gave no valid HTTP answer to {route} ({_short(exc)})") from None
        finally:
            watcher.stop()
        if response.status == 200:
            return conn, response
        try:
            detail = _error_detail(response.read(4096))
        except (OSError, http.client.HTTPException):
            detail = ""
        conn.close()
        suffix = f": {detail}" if detail else ""
        status = response.status
        if status in (401, 403):
            raise RemoteAuthError(f"{where} refused the request ({status}): check the API key{suffix}")
        if status == 503:
            raise ServerBusyError(f"{where} is busy or still loading its model (503){suffix}")
        if status == 404:
            raise RemoteServerError(f"{where} has no {route} endpoint (404): is the server kind right?{suffix}",
                                    status)
        raise RemoteServerError(f"{where} answered {route} with an error ({status}){suffix}", status)


class _CancelWatcher:
    """Shuts the connection's socket down when ``cancel`` fires, waking a blocked read."""

    def __init__(self, conn: http.client.HTTPConnection, cancel: Cancellable | None) -> None:
        self.fired = False
        self._done = threading.Event()
        self._conn = conn
        self._cancel = cancel
        self._thread: threading.Thread | None = None
        if cancel is not None:
            self._thread = threading.Thread(target=self._watch, name="starpad-remote-cancel", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        assert self._cancel is not None
        while not self._done.wait(CANCEL_POLL_S):
            if self._cancel.cancelled:
                self.fired = True
                sock = self._conn.sock
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass  # already closed
                return

    @property
    def requested(self) -> bool:
        """The token is set (the reader stops at once, without waiting for the shutdown)."""
        return self.fired or (self._cancel is not None and self._cancel.cancelled)

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()


def _sleep_unless_cancelled(seconds: float, cancel: Cancellable | None) -> bool:
    """Sleep; True if ``cancel`` fired meanwhile."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if cancel is not None and cancel.cancelled:
            return True
        time.sleep(min(left, CANCEL_POLL_S))
    return cancel is not None and cancel.cancelled


def _sse_events(
    response: http.client.HTTPResponse, watcher: _CancelWatcher, timeout_s: float, where: str
) -> Iterator[dict[str, Any]]:
    """Server-sent events as JSON objects. Only ``data:`` (and ``error:``, llama-server's
    mid-stream error) lines are meaningful; comments and blank lines pass; anything else is
    garbage and ends the stream with a clear error."""
    data_lines: list[str] = []
    seen_any = False
    while True:
        try:
            raw = response.readline(1 << 20)
        except TimeoutError:
            raise RemoteTimeoutError(
                f"{where} went silent for {timeout_s:g} s in the middle of a completion (timeout setting)"
            ) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if watcher.requested:
                raise StreamCancelled() from None
            raise RemoteProtocolError(f"the stream from {where} broke off ({_short(exc)})") from None
        if watcher.requested:
            raise StreamCancelled()
        if not raw:
            if data_lines:
                yield _parse_event(data_lines, where)
            raise RemoteProtocolError(
                f"the stream from {where} ended before the completion did (connection closed"
                f"{' after a partial answer' if seen_any else ''})"
            )
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise RemoteProtocolError(f"{where} sent bytes that are not a text stream: {_preview(raw)}") from None
        if not line:
            if data_lines:
                event = _parse_event(data_lines, where)
                data_lines = []
                if event.get("__done__"):
                    return
                seen_any = True
                yield event
            continue
        if line.startswith(":") or line.startswith(("event:", "id:", "retry:")):
            continue
        if line.startswith("data:"):
            data_lines.append(line[5:].lstrip(" "))
            continue
        if line.startswith("error:"):
            raise RemoteServerError(f"{where} reported an error mid-stream: {_error_detail(line[6:].encode())}")
        raise RemoteProtocolError(f"{where} sent something that is not an event stream: {_preview(raw)}")


def _parse_event(lines: list[str], where: str) -> dict[str, Any]:
    payload = "\n".join(lines).strip()
    if payload == "[DONE]":
        return {"__done__": True}
    try:
        event = json.loads(payload)
    except ValueError:
        raise RemoteProtocolError(f"{where} sent a malformed event: {_preview(payload.encode())}") from None
    if not isinstance(event, dict):
        raise RemoteProtocolError(f"{where} sent an event that is not a JSON object: {_preview(payload.encode())}")
    if "error" in event and not event.get("choices") and "content" not in event:
        raise RemoteServerError(f"{where} reported an error mid-stream: {_error_detail(payload.encode())}")
    return event


def _error_detail(data: bytes) -> str:
    """The server's own message from an error body (JSON ``error.message`` or text), one line."""
    text = data.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed.get("detail", parsed))
        if isinstance(error, dict):
            text = str(error.get("message") or error.get("msg") or error)
        elif isinstance(error, list) and error:
            text = str(error[0].get("msg", error[0]) if isinstance(error[0], dict) else error[0])
        else:
            text = str(error)
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "…"


def _preview(data: bytes) -> str:
    shown = data[:40]
    return repr(shown)[2:-1] + ("…" if len(data) > 40 else "")


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:MAX_ERROR_CHARS]

