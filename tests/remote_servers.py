"""Real servers on 127.0.0.1 for the remote-engine tests, and a proxy that misbehaves.

* ``LlamaServer``: llama.cpp's ``llama-server`` built from the llama.cpp vendored in the
  llama-cpp-python sdist (``bench/build_llama_tools.sh``, cached outside the checkout);
* ``OpenAIServer``: llama-cpp-python's own OpenAI-compatible server (``llama_cpp.server``);
* ``Proxy``: forwards to a server and records every request body, or fails on purpose
  (drops the connection, stalls, sends garbage, answers with an HTTP error status).

tests/conftest.py points ``XDG_CACHE_HOME`` into a sandbox at import time, so the tools
folder is found from ``STARPAD_TOOLS_CACHE`` or the real home's ``~/.cache/starpad``.
"""

from __future__ import annotations

import enum
import http.client
import importlib.metadata
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

#: Captured before anything can change it (conftest sandboxes XDG_CACHE_HOME, not HOME).
_HOME = Path(os.path.expanduser("~"))


def tools_bin() -> Path:
    override = os.environ.get("STARPAD_TOOLS_CACHE")
    cache = Path(override) if override else _HOME / ".cache" / "starpad"
    return cache / f"llama.cpp-{importlib.metadata.version('llama-cpp-python')}" / "bin"


def llama_server_binary() -> Path | None:
    binary = tools_bin() / "llama-server"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def require_llama_server() -> Path:
    """The built llama-server, or the test fails saying how to build it (never a skip)."""
    import pytest

    found = llama_server_binary()
    if found is None:
        pytest.fail("llama-server is not built: run `bash bench/build_llama_tools.sh` (packaging/dev.sh test does)")
    return found


class MemoryKeyring:
    """A keyring backend in memory: what the system keyring would store, for tests."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.stored.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.stored[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.stored.pop((service, username), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Process:
    """A server child process with its log in a temporary folder."""

    name = "server"

    def __init__(self, cmd: list[str], port: int, log_dir: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_dir / f"{self.name}-{port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, route: str, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", route)
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not become ready: {self.log_tail()}")

    def log_tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-2000:]

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class LlamaServer(_Process):
    name = "llama-server"

    def __init__(self, binary: Path, model: Path, log_dir: Path, n_ctx: int = 4096, slots: int = 1,
                 extra: tuple[str, ...] = ()) -> None:
        port = free_port()
        # The local engine's batch shape (512) and threads, so both compute alike.
        cmd = [str(binary), "-m", str(model), "-c", str(n_ctx * slots), "-np", str(slots), "-t", "2", "-tb", "2",
               "-b", "512", "-ub", "512", "--no-webui", "--host", "127.0.0.1", "--port", str(port), *extra]
        super().__init__(cmd, port, log_dir)
        self.wait_ready("/health")


class OpenAIServer(_Process):
    name = "llama_cpp.server"

    def __init__(self, model: Path, log_dir: Path, n_ctx: int = 4096) -> None:
        port = free_port()
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "2", "--n_batch", "512"]
        super().__init__(cmd, port, log_dir)
        self.wait_ready("/v1/models", timeout_s=180)


class Fault(enum.Enum):
    NONE = "none"  # forward and record
    DROP_AFTER_HEADERS = "drop-after-headers"  # the answer's status and headers, then the connection closes
    DROP_MID_STREAM = "drop-mid-stream"  # a few events, then the connection closes
    STALL = "stall"  # accept, read the request, never answer
    GARBAGE = "garbage"  # bytes that are not HTTP
    GARBAGE_STREAM = "garbage-stream"  # a valid 200 event-stream head, then garbage
    STATUS = "status"  # answer with ``status`` (401, 500, 503 …)


@dataclass
class Proxy:
    """A one-connection-at-a-time HTTP proxy on 127.0.0.1 in front of ``target_port``."""

    target_port: int
    fault: Fault = Fault.NONE
    status: int = 500
    #: Faults apply to requests on these routes only (others are forwarded); empty: all.
    routes: tuple[str, ...] = ()
    #: The first N faulty requests fail, later ones are forwarded (0: all fail).
    fail_times: int = 0
    #: Serve https with this context (the proxy terminates TLS and forwards plain http).
    tls: ssl.SSLContext | None = None
    bodies: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    port: int = 0
    _failed: int = 0

    def __post_init__(self) -> None:
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = int(self._server.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def requests_to(self, route: str) -> list[dict[str, object]]:
        return [body for path, body in self.bodies if path == route]

    def close(self) -> None:
        self._stop.set()
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the serving thread
        except OSError:
            pass
        self._server.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------ serving
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        if self.tls is not None:
            try:
                client = self.tls.wrap_socket(client, server_side=True)
            except (OSError, ssl.SSLError):
                client.close()
                return  # the client refused our certificate
        with client:
            head, body = _read_request(client)
            if head is None:
                return
            method, path = head.split(b" ")[:2]
            route = path.decode()
            try:
                parsed = json.loads(body) if body else {}
            except ValueError:
                parsed = {}
            self.bodies.append((route, parsed))
            faulty = self.fault is not Fault.NONE and (not self.routes or route in self.routes)
            if faulty and self.fail_times:
                faulty = self._failed < self.fail_times
            if faulty:
                self._failed += 1
                self._misbehave(client)
                return
            self._forward(client, head, body)

    def _misbehave(self, client: socket.socket) -> None:
        if self.fault is Fault.STALL:
            self._stop.wait(60)
        elif self.fault is Fault.GARBAGE:
            client.sendall(b"\x00\xff\x13garbage that is not HTTP at all\r\n\r\n")
        elif self.fault is Fault.GARBAGE_STREAM:
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
                           b"data: {\"content\": \"ok\", \"stop\": false}\n\n\x00\xff\xfe<html>garbage</html>\n\n")
        elif self.fault is Fault.STATUS:
            message = json.dumps({"error": {"code": self.status, "message": f"proxy says {self.status}"}}).encode()
            client.sendall(f"HTTP/1.1 {self.status} Error\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(message)}\r\nConnection: close\r\n\r\n".encode() + message)
        elif self.fault is Fault.DROP_AFTER_HEADERS:
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        elif self.fault is Fault.DROP_MID_STREAM:
            event = b'data: {"content": "x", "tokens": [87], "stop": false}\n\n'
            chunk = f"{len(event):x}\r\n".encode() + event + b"\r\n"
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                           + chunk * 3)

    def _forward(self, client: socket.socket, head: bytes, body: bytes) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        with upstream:
            # One request per connection: simpler to relay, and what the client does anyway.
            lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
            upstream.sendall(b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n" + body)
            while True:
                try:
                    data = upstream.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                try:
                    client.sendall(data)
                except OSError:
                    return  # the client hung up (a cancel): closing upstream tells the server


def _read_request(sock: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


def self_signed_certificate(folder: Path) -> tuple[Path, Path] | None:
    """(certificate, key) for 127.0.0.1 and localhost, made by the openssl command; None without it."""
    cert, key = folder / "server.pem", folder / "server.key"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True, timeout=60,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return cert, key
