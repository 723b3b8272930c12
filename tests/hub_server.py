"""A local server on 127.0.0.1 that speaks the Hugging Face Hub protocol the client uses.

HEAD/GET ``/{repo}/resolve/{rev}/{file}`` with ``X-Repo-Commit``, ``ETag``/``X-Linked-Etag``
(the sha256 of LFS files), ``X-Linked-Size`` and Range → 206; ``/api/models/{repo}/tree/{rev}``
lists files with ``lfs.oid``. Faults are set per file: drop the connection after N bytes,
throttle, corrupt bytes at the same size, send the wrong size, or 404.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Faults:
    drop_after: int | None = None  # close the connection after this many body bytes (once per request)
    drop_times: int = 1_000_000  # how many requests get dropped
    throttle_bps: int | None = None
    corrupt: bool = False
    short_by: int = 0
    missing: bool = False
    ignore_range: bool = False


@dataclass
class HubFile:
    data: bytes
    faults: Faults = field(default_factory=Faults)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, HubFile]] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, range)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(self, repo: str, filename: str, data: bytes, faults: Faults | None = None) -> HubFile:
        entry = HubFile(data, faults or Faults())
        self.repos.setdefault(repo, {})[filename] = entry
        return entry

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _lookup(self) -> tuple[HubFile | None, str, str]:
                path = unquote(urlparse(self.path).path)
                parts = path.strip("/").split("/")
                if "resolve" not in parts:
                    return None, "", ""
                i = parts.index("resolve")
                repo, filename = "/".join(parts[:i]), "/".join(parts[i + 2 :])
                return hub.repos.get(repo, {}).get(filename), repo, filename

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(head=True)

            def do_GET(self) -> None:  # noqa: N802
                path = urlparse(self.path).path
                if path.startswith("/api/models/") and "/tree/" in path:
                    self._tree(path)
                    return
                self._serve(head=False)

            def _tree(self, path: str) -> None:
                repo = path[len("/api/models/") : path.index("/tree/")]
                files = hub.repos.get(repo)
                if files is None:
                    self._error(404, "RepoNotFound")
                    return
                body = json.dumps([
                    {"type": "file", "oid": hashlib.sha1(f.data).hexdigest(), "size": len(f.data), "path": name,
                     "lfs": {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}}
                    for name, f in files.items()
                ]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: str) -> None:
                body = json.dumps({"error": code}).encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _serve(self, head: bool) -> None:
                entry, _repo, _name = self._lookup()
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
                if entry is None or entry.faults.missing:
                    self._error(404, "EntryNotFound")
                    return
                faults = entry.faults
                data = entry.data
                if faults.corrupt:
                    data = bytes(b ^ 0xFF if i % 4096 == 100 else b for i, b in enumerate(data))
                if faults.short_by:
                    data = data[: len(data) - faults.short_by]
                start = 0
                rng = self.headers.get("Range")
                if rng and not faults.ignore_range and not head:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(entry.data):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha1(entry.data).hexdigest()}"')
                self.send_header("X-Linked-Etag", f'"{entry.sha256}"')
                self.send_header("X-Linked-Size", str(len(entry.data)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if head:
                    return
                sent = 0
                drop = faults.drop_after if faults.drop_times > 0 else None
                for offset in range(0, len(body), 16384):
                    piece = body[offset : offset + 16384]
                    if drop is not None and sent + len(piece) > drop:
                        self.wfile.write(piece[: max(0, drop - sent)])
                        self.wfile.flush()
                        faults.drop_times -= 1
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    self.wfile.write(piece)
                    sent += len(piece)
                    if faults.throttle_bps:
                        time.sleep(len(piece) / faults.throttle_bps)

        return Handler
