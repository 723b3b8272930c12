"""Crash recovery: every open document's unsaved text on disk, per running instance.

Layout under the store's root (the app uses ``<AppDataLocation>/recovery``)::

    sessions/<session-id>/lock               held (flock) by the running instance all its life
    sessions/<session-id>/<document>.recovery one record per modified document
    damaged/                                 records that could not be read, kept aside

Why this shape:

* **One session folder per running instance, locked for the process lifetime.** The OS
  drops an ``flock`` when its process dies, however it dies (``kill -9`` included), so
  "this session's instance is dead" is exactly "its lock can be taken". A start therefore
  never lists — let alone deletes — the live text of another running instance.
* **Taking a dead session's lock claims it.** Two instances started together cannot both
  offer (and both restore) the same text: the first one to lock it holds it until its
  user decided, then lets go of what is left.
* **One file per record, replaced atomically** (temp file, fsync, rename, fsync of the
  folder): a crash mid-write leaves the previous record whole. The first line is JSON
  metadata with the text's length and SHA-256, the rest is the text as UTF-8, so a torn
  or altered record is recognised instead of half-restored, and a person can still open
  it in any editor.
* **Nothing is deleted unless its text is safe**: a record goes when its document was
  saved or closed clean, when the user discarded it knowingly, or after its text was
  adopted *and* rewritten into the adopting instance's own record. Damaged records are
  moved to ``damaged/`` and reported, never fatal.

Qt-free: the window drives it; tests drive it with a temporary folder.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.textfile import atomic_write_bytes, fsync_dir

log = logging.getLogger("starpad.recovery")

FORMAT = 1
RECORD_SUFFIX = ".recovery"
LOCK_NAME = "lock"
SESSIONS_DIR = "sessions"
DAMAGED_DIR = "damaged"
LEGACY_KEY = "legacy"
#: A session folder still being created is hidden; one left behind by a crash at that
#: instant holds no record and is removed once it is clearly stale.
_STALE_NEW_SESSION_S = 600.0


class Resolution(enum.Enum):
    """Why a candidate's record is removed: the only two reasons allowed."""

    RESTORED = "restored"  # its text lives on in the adopting instance's own record
    DISCARDED = "discarded"  # the user said so, after a confirmation


class DamagedRecord(Exception):
    """A record that cannot be trusted; the message says what is wrong with it."""


# ----------------------------------------------------------------- locking
try:
    import fcntl

    def _lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

except ImportError:  # pragma: no cover - Windows: a byte-range lock, also released by the OS on death
    import msvcrt

    def _lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True


def _try_lock(path: Path, create: bool = True) -> int | None:
    """Open ``path`` (created if missing and ``create``) and lock it; the descriptor, or None if held elsewhere.

    The lock belongs to this open file description: a second attempt from the same
    process fails too, so windows of one process also keep their sessions apart.
    """
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | (os.O_CREAT if create else 0)
    fd = os.open(path, flags, 0o600)
    try:
        if _lock(fd):
            return fd
    except OSError:
        os.close(fd)
        raise
    os.close(fd)
    return None


# ------------------------------------------------------------------ writing
def _encode_text(text: str) -> bytes:
    # surrogatepass: a lone surrogate (possible in a QString) is kept, not a reason to lose the text.
    return text.encode("utf-8", "surrogatepass")


def _decode_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


# ------------------------------------------------------------------- values
@dataclass(frozen=True)
class DocumentSnapshot:
    """What the window hands over for one document: the text and what it belongs to."""

    text: str
    path: Path | None = None
    caret: int = 0
    #: How the file is stored (encoding, BOM, line endings; ``TextFormat.as_dict()``), so a
    #: restored document is saved the way it was opened. None: a new document.
    file_format: dict[str, Any] | None = None
    #: The version on disk the text was based on (``Fingerprint.as_dict()``), so a restore can
    #: tell whether the file changed since. None: never read from disk.
    disk_fingerprint: dict[str, Any] | None = None

    @property
    def title(self) -> str:
        return self.path.name if self.path is not None else "untitled"


@dataclass(frozen=True)
class RecoveryCandidate:
    """One document's unsaved text left by an instance that is gone."""

    key: str  # unique within a scan: "<session>/<document>" or "legacy"
    session_id: str | None  # None for the legacy single file
    document_id: str
    original_path: Path | None
    title: str
    saved_at: float  # seconds since the epoch, when the record was written
    text: str
    caret: int
    file_format: dict[str, Any] | None
    disk_fingerprint: dict[str, Any] | None
    source: Path  # the file that holds it
    legacy: bool = False

    def preview(self, max_lines: int = 3, max_chars: int = 240) -> str:
        """The first non-blank lines, for a list the user chooses from."""
        lines = [line.rstrip() for line in self.text[: max_chars * 4].splitlines() if line.strip()]
        return "\n".join(lines[:max_lines])[:max_chars]

    def matches(self, path: Path | None) -> bool:
        """Is this the unsaved text of ``path``?"""
        return path is not None and self.original_path is not None and _same_file(path, self.original_path)


@dataclass(frozen=True)
class RecoveryScan:
    """What a start found: candidates (newest first) and notes about damaged data."""

    candidates: tuple[RecoveryCandidate, ...] = ()
    notes: tuple[str, ...] = ()

    def ordered(self, preferred: Path | None) -> list[RecoveryCandidate]:
        """Candidates for ``preferred`` (the file being opened) first, then newest first."""
        return sorted(self.candidates, key=lambda c: (not c.matches(preferred), -c.saved_at))


def _optional_dict(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a.absolute() == b.absolute()


# ------------------------------------------------------------------ records
def encode_record(document_id: str, snapshot: DocumentSnapshot, saved_at: float) -> bytes:
    """One record: a JSON line of metadata (with the text's size and digest), then the text."""
    body = _encode_text(snapshot.text)
    meta = {
        "format": FORMAT,
        "document": document_id,
        "path": str(snapshot.path) if snapshot.path is not None else None,
        "title": snapshot.title,
        "saved_at": saved_at,
        "caret": snapshot.caret,
        "file_format": snapshot.file_format,
        "disk_fingerprint": snapshot.disk_fingerprint,
        "text_bytes": len(body),
        "text_sha256": hashlib.sha256(body).hexdigest(),
        "pid": os.getpid(),
    }
    return json.dumps(meta, ensure_ascii=True).encode("ascii") + b"\n" + body


def decode_record(data: bytes) -> tuple[dict[str, Any], str]:
    """Metadata and text of a record, or DamagedRecord saying what is wrong."""
    head, newline, body = data.partition(b"\n")
    if not newline:
        raise DamagedRecord("no metadata line" if data else "empty file")
    try:
        meta = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise DamagedRecord("unreadable metadata") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DamagedRecord("unknown record format")
    expected = meta.get("text_bytes")
    if not isinstance(expected, int) or not isinstance(meta.get("text_sha256"), str):
        raise DamagedRecord("metadata without the text's size and digest")
    if len(body) != expected:
        raise DamagedRecord(f"text is {len(body)} bytes, the record says {expected}")
    if hashlib.sha256(body).hexdigest() != meta["text_sha256"]:
        raise DamagedRecord("text does not match its checksum")
    try:
        text = _decode_text(body)
    except UnicodeDecodeError:
        raise DamagedRecord("text is not valid UTF-8") from None
    path, caret, saved_at = meta.get("path"), meta.get("caret", 0), meta.get("saved_at")
    if path is not None and not isinstance(path, str):
        raise DamagedRecord("bad file path in metadata")
    if not isinstance(caret, int) or not isinstance(saved_at, (int, float)):
        raise DamagedRecord("bad caret or time in metadata")
    return meta, text


# ------------------------------------------------------------------ session
class RecoverySession:
    """This instance's own records. The folder and its lock appear with the first write."""

    def __init__(self, sessions_dir: Path) -> None:
        self._sessions_dir = sessions_dir
        self.id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(4)}"
        self.folder = sessions_dir / self.id
        self._lock_fd: int | None = None

    @property
    def active(self) -> bool:
        return self._lock_fd is not None

    def _ensure(self) -> None:
        """Create the folder under a hidden name, lock it, then make it visible.

        A scanning instance skips hidden folders, so it never sees this session unlocked.
        """
        if self._lock_fd is not None:
            return
        self._sessions_dir.mkdir(parents=True, exist_ok=True)
        staging = self._sessions_dir / f".{self.id}.new"
        staging.mkdir()
        fd = _try_lock(staging / LOCK_NAME)
        if fd is None:  # pragma: no cover - nobody else knows this brand-new name
            raise OSError(f"cannot lock the new recovery session {staging}")
        try:
            os.rename(staging, self.folder)
        except OSError:
            os.close(fd)
            raise
        self._lock_fd = fd
        fsync_dir(self._sessions_dir)
        log.info("recovery session %s started", self.id)

    def record_path(self, document_id: str) -> Path:
        return self.folder / f"{document_id}{RECORD_SUFFIX}"

    def write(self, document_id: str, snapshot: DocumentSnapshot) -> Path:
        """Replace ``document_id``'s record atomically; OSError when the disk refuses."""
        self._ensure()
        path = self.record_path(document_id)
        atomic_write_bytes(path, encode_record(document_id, snapshot, time.time()))
        return path

    def remove(self, document_id: str) -> None:
        """The document was saved or closed clean: its record has done its job."""
        if self._lock_fd is not None:
            self.record_path(document_id).unlink(missing_ok=True)

    def has_records(self) -> bool:
        return self._lock_fd is not None and any(self.folder.glob(f"*{RECORD_SUFFIX}"))

    def close(self) -> None:
        """Clean exit: remove the folder if no record is left, and let go of the lock.

        A record still there (a document nobody saved or discarded) stays, and becomes
        recoverable by the next start exactly as after a crash.
        """
        if self._lock_fd is None:
            return
        if not self.has_records():
            _remove_session_folder(self.folder)
        os.close(self._lock_fd)
        self._lock_fd = None


def _remove_session_folder(folder: Path) -> None:
    """Remove a folder that holds no record (lock and leftover temp files only)."""
    for child in folder.iterdir() if folder.is_dir() else ():
        if child.name.endswith(RECORD_SUFFIX):
            return  # never delete a record this way
    shutil.rmtree(folder, ignore_errors=True)


def new_document_id() -> str:
    return secrets.token_hex(8)


# -------------------------------------------------------------------- store
class RecoveryStore:
    """The recovery folder: this instance's session plus what dead instances left."""

    def __init__(self, root: Path, legacy_file: Path | None = None) -> None:
        self.root = Path(root)
        self.sessions_dir = self.root / SESSIONS_DIR
        self.damaged_dir = self.root / DAMAGED_DIR
        self.legacy_file = legacy_file
        self.session = RecoverySession(self.sessions_dir)
        # Dead sessions (and the legacy file) this instance has locked while its user decides.
        self._claims: dict[str, int] = {}

    # ---------------------------------------------------------------- scan
    def scan(self) -> RecoveryScan:
        """Everything recoverable from instances that are gone, claimed for this one.

        Never raises for bad data: a record that cannot be read is moved to ``damaged/``
        and described in ``notes``. Sessions of running instances are not opened at all.
        """
        candidates: list[RecoveryCandidate] = []
        notes: list[str] = []
        try:
            folders = list(self._session_folders())
        except OSError as exc:
            folders = []
            notes.append(f"The recovery folder {self.sessions_dir} could not be read ({exc.strerror or exc}).")
        for folder in folders:
            try:
                candidates.extend(self._scan_session(folder, notes))
            except FileNotFoundError:
                continue  # another instance finished with it a moment ago
            except OSError as exc:
                log.warning("recovery session %s could not be read: %s", folder.name, exc)
                reason = exc.strerror or exc
                notes.append(f"Recovery data in {folder} could not be read ({reason}); it was left in place.")
        legacy = self._scan_legacy(notes)
        if legacy is not None:
            candidates.append(legacy)
        candidates.sort(key=lambda c: -c.saved_at)
        return RecoveryScan(tuple(candidates), tuple(notes))

    def _session_folders(self) -> Iterator[Path]:
        if not self.sessions_dir.is_dir():
            return
        for folder in sorted(self.sessions_dir.iterdir()):
            if not folder.is_dir() or folder.name == self.session.id:
                continue
            if folder.name.startswith("."):
                self._remove_stale_staging(folder)
                continue
            yield folder

    def _remove_stale_staging(self, folder: Path) -> None:
        with contextlib.suppress(OSError):
            if time.time() - folder.stat().st_mtime > _STALE_NEW_SESSION_S:
                _remove_session_folder(folder)

    def _claim(self, key: str, lock_path: Path, create: bool = True) -> bool:
        if key in self._claims:
            return True
        fd = _try_lock(lock_path, create)
        if fd is None:
            return False  # its instance is running: its data is not ours to see
        self._claims[key] = fd
        return True

    def _unclaim(self, key: str) -> None:
        fd = self._claims.pop(key, None)
        if fd is not None:
            os.close(fd)

    def _scan_session(self, folder: Path, notes: list[str]) -> list[RecoveryCandidate]:
        if not self._claim(folder.name, folder / LOCK_NAME):
            return []
        found = []
        for path in sorted(folder.glob(f"*{RECORD_SUFFIX}")):
            try:
                meta, text = decode_record(path.read_bytes())
            except DamagedRecord as exc:
                notes.append(self._set_aside(path, f"{folder.name}-{path.name}", str(exc)))
                continue
            found.append(
                RecoveryCandidate(
                    key=f"{folder.name}/{path.stem}",
                    session_id=folder.name,
                    document_id=str(meta.get("document") or path.stem),
                    original_path=Path(meta["path"]) if meta.get("path") else None,
                    title=str(meta.get("title") or (Path(meta["path"]).name if meta.get("path") else "untitled")),
                    saved_at=float(meta["saved_at"]),
                    text=text,
                    caret=int(meta.get("caret", 0)),
                    file_format=_optional_dict(meta.get("file_format")),
                    disk_fingerprint=_optional_dict(meta.get("disk_fingerprint")),
                    source=path,
                )
            )
        if not found:
            self._drop_session(folder)
        log.info("recovery session %s: %d record(s) from a previous instance", folder.name, len(found))
        return found

    def _drop_session(self, folder: Path) -> None:
        _remove_session_folder(folder)
        self._unclaim(folder.name)

    def _scan_legacy(self, notes: list[str]) -> RecoveryCandidate | None:
        """Today's single ``recovery.txt``: first line the original path, the rest the text."""
        legacy = self.legacy_file
        if legacy is None or not legacy.is_file():
            return None
        try:
            if not self._claim(LEGACY_KEY, legacy, create=False):  # never recreate it
                return None
            data = legacy.read_bytes()
            saved_at = legacy.stat().st_mtime
        except FileNotFoundError:
            self._unclaim(LEGACY_KEY)
            return None
        except OSError as exc:
            reason = exc.strerror or exc
            notes.append(f"The old recovery file {legacy} could not be read ({reason}); it was left in place.")
            self._unclaim(LEGACY_KEY)
            return None
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError:
            self._unclaim(LEGACY_KEY)
            notes.append(self._set_aside(legacy, f"legacy-{legacy.name}", "text is not valid UTF-8"))
            return None
        original, _, text = content.partition("\n")
        path = Path(original) if original.strip() else None
        return RecoveryCandidate(
            key=LEGACY_KEY,
            session_id=None,
            document_id=LEGACY_KEY,
            original_path=path,
            title=path.name if path is not None else "untitled",
            saved_at=saved_at,
            text=text,
            caret=0,
            file_format=None,  # the old version read and wrote UTF-8 only
            disk_fingerprint=None,
            source=legacy,
            legacy=True,
        )

    def _set_aside(self, path: Path, name: str, reason: str) -> str:
        """Move a damaged file to ``damaged/`` (never delete it) and say so."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        try:
            self.damaged_dir.mkdir(parents=True, exist_ok=True)
            target = self.damaged_dir / f"{stamp}-{secrets.token_hex(2)}-{name}"
            os.replace(path, target)
        except OSError as exc:
            log.warning("damaged recovery record %s could not be moved aside: %s", path, exc)
            return f"Damaged recovery data ({reason}) in {path} could not be moved aside: {exc.strerror or exc}."
        log.warning("damaged recovery record (%s) moved to %s", reason, target)
        return f"Damaged recovery data ({reason}) was moved to {target}."

    # ------------------------------------------------------------ decide
    def remove(self, candidate: RecoveryCandidate, resolution: Resolution) -> None:
        """Delete a candidate's record: its text was adopted and rewritten, or discarded knowingly.

        Raises OSError if the file cannot be removed (the text then stays recoverable).
        """
        if candidate.legacy:
            candidate.source.unlink(missing_ok=True)
            self._unclaim(LEGACY_KEY)
        else:
            candidate.source.unlink(missing_ok=True)
            folder = candidate.source.parent
            if not any(folder.glob(f"*{RECORD_SUFFIX}")):
                self._drop_session(folder)
        log.info("recovery record %s %s", candidate.key, resolution.value)

    def release(self) -> None:
        """Keep whatever is undecided for a later start (or for another instance now)."""
        for key in list(self._claims):
            self._unclaim(key)

    def close(self) -> None:
        """Clean exit of this instance."""
        self.release()
        self.session.close()
