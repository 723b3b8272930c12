"""Model downloads from the Hugging Face Hub that resume, verify and never half-land.

huggingface-hub (2.x) fetches metadata and provides the HTTP session (its auth, proxy
and endpoint settings, ``HF_ENDPOINT`` included), but its downloader neither resumes
across calls nor checks sha256 — only sizes. A 2 GB model on a flaky connection needs
both, so the transfer is ours:

* Files land in the standard Hugging Face cache layout — ``blobs/<sha256>``, a
  ``snapshots/<commit>/<file>`` link and ``refs/<revision>`` — so other tools share them.
* The partial blob is ``blobs/<sha256>.incomplete``; after a cancel, a dropped
  connection or an app restart the next attempt continues with an HTTP Range request.
* sha256 is computed while streaming (the kept partial is hashed first on resume);
  a mismatch deletes the partial and says so. Only a verified, GGUF-valid file is
  moved into place.
* Free disk space is checked first; remote names that would escape the model folder
  are refused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")

# Imported at module level, on the GUI thread, so the download worker thread never
# pays for (or runs PySide's import hook on) a first import of the network stack.
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url  # noqa: E402
from huggingface_hub.constants import HF_HUB_CACHE  # noqa: E402
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError  # noqa: E402
from huggingface_hub.hf_api import RepoFile as HubRepoFile  # noqa: E402
from huggingface_hub.utils import build_hf_headers, get_session  # noqa: E402

from app.core.engine import CancelToken  # noqa: E402
from app.core.errors import CancelledError, ModelFileError, StarpadError  # noqa: E402
from app.core.units import format_bytes  # noqa: E402

log = logging.getLogger("starpad.download")

CHUNK_BYTES = 1 << 20  # hashing kept partials
NETWORK_CHUNK_BYTES = 1 << 16  # small, so a dropped connection loses at most 64 KiB
MAX_RETRIES = 5
BACKOFF_SECONDS = (0.5, 1, 2, 4, 8)
DISK_MARGIN_BYTES = 100_000_000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class DownloadError(StarpadError):
    """A download could not complete; the message says why and what was kept."""


@dataclass(frozen=True)
class RemoteFile:
    repo_id: str
    filename: str
    revision: str
    url: str
    commit: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class Progress:
    downloaded: int
    total: int
    bytes_per_second: float

    @property
    def fraction(self) -> float:
        return self.downloaded / self.total if self.total else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if self.bytes_per_second <= 0:
            return None
        return (self.total - self.downloaded) / self.bytes_per_second


ProgressCallback = Callable[[Progress], None]


def hf_cache_dir() -> Path:
    return Path(HF_HUB_CACHE)


def safe_relative_path(filename: str) -> PurePosixPath:
    """The repo path as a relative path that stays inside a folder, or DownloadError."""
    if not filename or "\\" in filename or "\0" in filename:
        raise DownloadError(f"refusing the remote file name {filename!r}")
    path = PurePosixPath(filename)
    if path.is_absolute() or any(part in ("..", "", ".") for part in path.parts):
        raise DownloadError(f"refusing the remote file name {filename!r}: it would leave the model folder")
    return path


class HubDownloader:
    """Download model files into a Hugging Face cache folder (or a folder of the user's)."""

    def __init__(self, cache_dir: Path | None = None, endpoint: str | None = None, token: str | bool | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir else hf_cache_dir()
        self.endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
        self.token = token

    # ---------------------------------------------------------- metadata
    def resolve(self, repo_id: str, filename: str, revision: str = "main") -> RemoteFile:
        safe_relative_path(filename)
        url = hf_hub_url(repo_id, filename, revision=revision, endpoint=self.endpoint)
        try:
            meta = get_hf_file_metadata(url, token=self.token, endpoint=self.endpoint)
        except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError):
            raise DownloadError(f"{repo_id}/{filename} at {revision} was not found on the Hub") from None
        except Exception as exc:  # noqa: BLE001 - network errors come in many types
            raise DownloadError(f"could not reach the Hub for {repo_id}/{filename}: {exc}") from None
        etag = (meta.etag or "").strip('"').lower()
        sha256 = etag if _SHA256.match(etag) else None
        if meta.size is None or meta.commit_hash is None:
            raise DownloadError(f"the Hub sent incomplete metadata for {repo_id}/{filename}")
        return RemoteFile(repo_id, filename, revision, meta.location or url, meta.commit_hash, meta.size, sha256)

    def list_files(self, repo_id: str, revision: str = "main") -> list[tuple[str, int, str | None]]:
        """(path, size, sha256) of every file in the repo, from the Hub's tree API."""
        api = HfApi(endpoint=self.endpoint, token=self.token)
        try:
            entries = list(api.list_repo_tree(repo_id, revision=revision, recursive=True))
        except Exception as exc:  # noqa: BLE001
            raise DownloadError(f"could not list {repo_id}: {exc}") from None
        files = []
        for entry in entries:
            if isinstance(entry, HubRepoFile):
                sha = entry.lfs.sha256 if entry.lfs is not None else None
                files.append((entry.path, entry.size, sha))
        return files

    # ------------------------------------------------------------ layout
    def _repo_dir(self, repo_id: str) -> Path:
        return self.cache_dir / ("models--" + repo_id.replace("/", "--"))

    def _blob_name(self, remote: RemoteFile) -> str:
        return remote.sha256 or hashlib.sha256(f"{remote.commit}/{remote.filename}".encode()).hexdigest()

    def partial_path(self, remote: RemoteFile) -> Path:
        return self._repo_dir(remote.repo_id) / "blobs" / f"{self._blob_name(remote)}.incomplete"

    def final_path(self, remote: RemoteFile) -> Path:
        snapshot = self._repo_dir(remote.repo_id) / "snapshots" / remote.commit
        target = (snapshot / safe_relative_path(remote.filename)).resolve()
        if not target.is_relative_to(snapshot.resolve()):
            raise DownloadError(f"refusing the remote file name {remote.filename!r}: it would leave the model folder")
        return snapshot / safe_relative_path(remote.filename)

    # ---------------------------------------------------------- download
    def download(
        self,
        repo_id: str,
        filename: str,
        revision: str = "main",
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        expected_sha256: str | None = None,
    ) -> Path:
        """Download (or finish downloading) a file; return its verified local path."""
        remote = self.resolve(repo_id, filename, revision)
        want_sha = (expected_sha256 or remote.sha256 or "").lower() or None
        final = self.final_path(remote)
        if final.is_file() and final.stat().st_size == remote.size:
            log.info("already downloaded: %s", filename)
            return final
        partial = self.partial_path(remote)
        partial.parent.mkdir(parents=True, exist_ok=True)
        have = partial.stat().st_size if partial.exists() else 0
        if have > remote.size:
            partial.unlink()
            have = 0
        free = shutil.disk_usage(partial.parent).free
        if remote.size - have + DISK_MARGIN_BYTES > free:
            raise DownloadError(
                f"not enough disk space for {filename}: {format_bytes(remote.size - have)} more needed, "
                f"{format_bytes(free)} free in {partial.parent}"
            )
        if have:
            log.info("resuming %s at %s", filename, format_bytes(have))
        hasher = _hash_file(partial) if have else hashlib.sha256()

        attempt = 0
        while True:
            try:
                have = self._transfer(remote, partial, have, hasher, progress, cancel)
                break
            except CancelledError:
                raise
            except _Restart:
                hasher = hashlib.sha256()
                have = 0
            except (OSError, _Transient) as exc:
                if isinstance(exc, OSError) and exc.errno == 28:
                    raise DownloadError(f"the disk is full; the partial download is kept in {partial}") from None
                attempt += 1
                if attempt > MAX_RETRIES:
                    raise DownloadError(
                        f"download of {filename} failed after {MAX_RETRIES} retries ({exc}); "
                        f"{format_bytes(have)} kept, it will resume next time"
                    ) from None
                delay = BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)]
                log.info("transfer interrupted (%s); retry %d in %.1f s", exc, attempt, delay)
                _sleep_unless_cancelled(delay, cancel)
                # Re-hash what is on disk: a failed write may have left it shorter than hashed.
                have = partial.stat().st_size if partial.exists() else 0
                hasher = _hash_file(partial) if have else hashlib.sha256()

        if have != remote.size:
            partial.unlink(missing_ok=True)
            raise DownloadError(
                f"{filename} arrived with the wrong size ({have:,} bytes instead of {remote.size:,}); it was deleted"
            )
        digest = hasher.hexdigest()
        if want_sha and digest != want_sha:
            partial.unlink(missing_ok=True)
            raise DownloadError(
                f"{filename} failed its sha256 check (corrupted in transit?): expected {want_sha[:12]}…, "
                f"got {digest[:12]}…; the partial download was deleted"
            )
        if filename.lower().endswith(".gguf"):
            from app.core.model_info import model_info

            try:
                model_info(partial)
            except ModelFileError as exc:
                partial.unlink(missing_ok=True)
                raise DownloadError(f"{filename} is not a usable model ({exc}); it was deleted") from None
        blob = partial.with_suffix("")
        os.replace(partial, blob)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.is_symlink() or final.exists():
            final.unlink()
        try:
            final.symlink_to(os.path.relpath(blob, final.parent))
        except OSError:  # file systems without symlinks (some Windows set-ups): copy the name over
            os.replace(blob, final)
        refs = self._repo_dir(remote.repo_id) / "refs"
        refs.mkdir(parents=True, exist_ok=True)
        (refs / revision).write_text(remote.commit)
        log.info(
            "downloaded %s (%s, sha256 %s)", filename, format_bytes(remote.size), "verified" if want_sha else "unknown"
        )
        return final

    def _transfer(
        self,
        remote: RemoteFile,
        partial: Path,
        have: int,
        hasher: hashlib._Hash,
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
    ) -> int:
        if have == remote.size:
            return have
        headers = build_hf_headers(token=self.token)
        if have:
            headers["Range"] = f"bytes={have}-"
        window_start, window_bytes = time.monotonic(), 0
        speed = 0.0
        with get_session().stream("GET", remote.url, headers=headers, follow_redirects=True, timeout=30) as response:
            if response.status_code == 416:
                raise _Restart
            if response.status_code >= 500 or response.status_code == 429:
                raise _Transient(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                raise DownloadError(f"the server refused {remote.filename}: HTTP {response.status_code}")
            if have and response.status_code == 200:  # Range ignored: start over
                log.info("server ignored the range request; restarting %s", remote.filename)
                raise _Restart
            mode = "ab" if have else "wb"
            try:
                with partial.open(mode) as out:
                    for chunk in response.iter_bytes(NETWORK_CHUNK_BYTES):
                        if cancel is not None and cancel.cancelled:
                            out.flush()
                            raise CancelledError(
                                f"download cancelled; {format_bytes(have)} kept, it resumes next time"
                            )
                        out.write(chunk)
                        hasher.update(chunk)
                        have += len(chunk)
                        window_bytes += len(chunk)
                        now = time.monotonic()
                        if now - window_start >= 0.25:
                            instant = window_bytes / (now - window_start)
                            speed = instant if speed == 0 else 0.7 * speed + 0.3 * instant
                            window_start, window_bytes = now, 0
                            if progress is not None:
                                progress(Progress(have, remote.size, speed))
            except CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - httpx read errors, dropped connections
                if isinstance(exc, OSError) and exc.errno == 28:
                    raise
                raise _Transient(str(exc) or type(exc).__name__) from None
        if progress is not None:
            progress(Progress(have, remote.size, speed))
        if have < remote.size:
            raise _Transient(f"connection closed at {format_bytes(have)} of {format_bytes(remote.size)}")
        return have


class _Transient(Exception):
    """A failure worth retrying (dropped connection, 5xx)."""


class _Restart(Exception):
    """The partial file cannot be continued; start from byte 0."""


def _hash_file(path: Path) -> hashlib._Hash:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            hasher.update(block)
    return hasher


def _sleep_unless_cancelled(seconds: float, cancel: CancelToken | None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cancel is not None and cancel.cancelled:
            raise CancelledError("download cancelled")
        time.sleep(0.05)
