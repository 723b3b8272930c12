"""The recovery store: per-document records, per-instance sessions, damaged data kept aside."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.recovery import (
    DAMAGED_DIR,
    RECORD_SUFFIX,
    DocumentSnapshot,
    RecoveryScan,
    RecoveryStore,
    Resolution,
    decode_record,
    encode_record,
)

ROOT = Path(__file__).resolve().parents[2]

# A separate process owns a session, writes its records, says so, then waits to be killed.
CHILD = """
import sys, time
from pathlib import Path
from app.core.recovery import DocumentSnapshot, RecoveryStore
store = RecoveryStore(Path(sys.argv[1]))
for i in range(2, len(sys.argv), 2):
    path = Path(sys.argv[i + 1]) if sys.argv[i + 1] else None
    store.session.write(f"doc{i}", DocumentSnapshot(sys.argv[i], path, caret=len(sys.argv[i])))
print(store.session.id, flush=True)
time.sleep(120)
"""


class Instance:
    """Another Starpad instance, reduced to its recovery store, in its own process."""

    def __init__(self, root: Path, *docs: tuple[str, str]) -> None:
        args = [item for text, path in docs for item in (text, path)]
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.process.stdout is not None
        self.session_id = self.process.stdout.readline().strip()
        assert self.session_id, "the child instance did not start"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=10) == -signal.SIGKILL


@pytest.fixture()
def instances() -> Iterator[list[Instance]]:
    started: list[Instance] = []
    yield started
    for instance in started:
        if instance.process.poll() is None:
            instance.kill()


def dead_instance(root: Path, instances: list[Instance], *docs: tuple[str, str]) -> Instance:
    instance = Instance(root, *docs)
    instances.append(instance)
    instance.kill()
    return instance


def test_a_killed_instance_leaves_every_document_recoverable(tmp_path: Path, instances: list[Instance]) -> None:
    root = tmp_path / "recovery"
    child = Instance(root, ("first unsaved text\n", str(tmp_path / "a.py")), ("second, never saved", ""))
    instances.append(child)
    assert RecoveryStore(root).scan().candidates == ()  # alive: its data is not ours to see
    child.kill()

    scan = RecoveryStore(root).scan()
    assert scan.notes == ()
    found = {c.text: c for c in scan.candidates}
    assert set(found) == {"first unsaved text\n", "second, never saved"}
    first, second = found["first unsaved text\n"], found["second, never saved"]
    assert first.original_path == tmp_path / "a.py" and first.title == "a.py"
    assert first.caret == len("first unsaved text\n")
    assert second.original_path is None and second.title == "untitled"
    assert first.session_id == second.session_id == child.session_id
    assert first.document_id != second.document_id


def test_two_instances_never_share_recovery_data(tmp_path: Path, instances: list[Instance]) -> None:
    root = tmp_path / "recovery"
    one, two = RecoveryStore(root), RecoveryStore(root)  # two windows of one process: separate locks
    one.session.write("doc", DocumentSnapshot("one's live text"))
    two.session.write("doc", DocumentSnapshot("two's live text"))
    assert one.session.id != two.session.id
    assert one.scan().candidates == () and two.scan().candidates == ()
    assert RecoveryStore(root).scan().candidates == ()

    a = dead_instance(root, instances, ("text of A", ""))
    b = dead_instance(root, instances, ("text of B", ""))
    scan = RecoveryStore(root).scan()
    assert sorted((c.session_id, c.text) for c in scan.candidates) == sorted(
        [(a.session_id, "text of A"), (b.session_id, "text of B")]
    )


def test_rewriting_a_document_replaces_its_record(tmp_path: Path, instances: list[Instance]) -> None:
    store = RecoveryStore(tmp_path)
    store.session.write("doc", DocumentSnapshot("old"))
    record = store.session.write("doc", DocumentSnapshot("new", tmp_path / "x.py"))
    assert sorted(p.name for p in record.parent.iterdir()) == ["doc.recovery", "lock"]  # no temp file left
    meta, text = decode_record(record.read_bytes())
    assert text == "new" and meta["path"] == str(tmp_path / "x.py")


def test_a_claimed_session_is_offered_to_one_instance_at_a_time(tmp_path: Path, instances: list[Instance]) -> None:
    dead_instance(tmp_path, instances, ("only once", ""))
    first, second = RecoveryStore(tmp_path), RecoveryStore(tmp_path)
    assert [c.text for c in first.scan().candidates] == ["only once"]
    assert second.scan().candidates == ()  # first is still deciding
    assert [c.text for c in first.scan().candidates] == ["only once"]  # a re-scan keeps its own claim
    first.release()  # "Later"
    assert [c.text for c in second.scan().candidates] == ["only once"]


def test_adopting_removes_the_old_record_after_the_new_one_exists(tmp_path: Path, instances: list[Instance]) -> None:
    dead = dead_instance(tmp_path, instances, ("adopt me", str(tmp_path / "a.py")))
    adopter = RecoveryStore(tmp_path)
    (candidate,) = adopter.scan().candidates
    adopter.session.write("mine", DocumentSnapshot(candidate.text, candidate.original_path))
    adopter.remove(candidate, Resolution.RESTORED)
    assert not (tmp_path / "sessions" / dead.session_id).exists()
    assert RecoveryStore(tmp_path).scan().candidates == ()  # the adopter is alive: its copy is its own
    adopter.close()  # the adopter stops in turn, its document still unsaved
    (again,) = RecoveryStore(tmp_path).scan().candidates
    assert again.text == "adopt me" and again.session_id == adopter.session.id


def test_discarding_removes_only_that_document(tmp_path: Path, instances: list[Instance]) -> None:
    dead = dead_instance(tmp_path, instances, ("keep", ""), ("drop", ""))
    store = RecoveryStore(tmp_path)
    drop = next(c for c in store.scan().candidates if c.text == "drop")
    store.remove(drop, Resolution.DISCARDED)
    store.release()
    assert [c.text for c in RecoveryStore(tmp_path).scan().candidates] == ["keep"]
    assert (tmp_path / "sessions" / dead.session_id).is_dir()


def test_a_clean_close_leaves_nothing_but_an_unsaved_document_survives_it(tmp_path: Path) -> None:
    store = RecoveryStore(tmp_path)
    store.session.write("saved", DocumentSnapshot("saved later"))
    store.session.remove("saved")
    store.close()
    assert list((tmp_path / "sessions").iterdir()) == []

    other = RecoveryStore(tmp_path)
    other.session.write("open", DocumentSnapshot("nobody saved or discarded this"))
    other.close()  # e.g. the application quit without asking about this document
    assert [c.text for c in RecoveryStore(tmp_path).scan().candidates] == ["nobody saved or discarded this"]


def test_legacy_recovery_file_is_a_candidate(tmp_path: Path) -> None:
    legacy = tmp_path / "recovery.txt"
    legacy.write_text("/home/me/doc.py\nline one\nline two\n", encoding="utf-8")
    store = RecoveryStore(tmp_path / "recovery", legacy_file=legacy)
    (candidate,) = store.scan().candidates
    assert candidate.legacy and candidate.original_path == Path("/home/me/doc.py")
    assert candidate.text == "line one\nline two\n" and candidate.title == "doc.py"
    assert RecoveryStore(tmp_path / "recovery", legacy_file=legacy).scan().candidates == ()  # claimed
    store.remove(candidate, Resolution.RESTORED)
    assert not legacy.exists()


def test_legacy_recovery_file_without_a_path(tmp_path: Path) -> None:
    legacy = tmp_path / "recovery.txt"
    legacy.write_text("\nnever saved", encoding="utf-8")
    (candidate,) = RecoveryStore(tmp_path / "r", legacy_file=legacy).scan().candidates
    assert candidate.original_path is None and candidate.text == "never saved"


def test_legacy_file_with_invalid_utf8_is_kept_aside_not_fatal(tmp_path: Path) -> None:
    legacy = tmp_path / "recovery.txt"
    data = b"/tmp/x.py\nsome text \xff\xfe broken"
    legacy.write_bytes(data)
    store = RecoveryStore(tmp_path / "recovery", legacy_file=legacy)
    scan = store.scan()
    assert scan.candidates == ()
    (note,) = scan.notes
    assert "not valid UTF-8" in note and str(tmp_path / "recovery" / DAMAGED_DIR) in note
    (kept,) = (tmp_path / "recovery" / DAMAGED_DIR).iterdir()
    assert kept.read_bytes() == data and not legacy.exists()
    assert RecoveryStore(tmp_path / "recovery", legacy_file=legacy).scan() == RecoveryScan()  # reported once


def _valid_record(text: str) -> bytes:
    return encode_record("doc", DocumentSnapshot(text), 1_700_000_000.0)


def _with_body(body: bytes) -> bytes:
    """A record whose metadata matches ``body`` exactly, whatever bytes it holds."""
    meta = json.loads(_valid_record("").split(b"\n", 1)[0])
    meta.update(text_bytes=len(body), text_sha256=hashlib.sha256(body).hexdigest())
    return json.dumps(meta).encode() + b"\n" + body


DAMAGE = {
    "empty file": b"",
    "no metadata line": b"just some text",
    "unreadable metadata": b"{not json\ntext",
    "unknown record format": b'{"format": 99}\ntext',
    "text is 4 bytes, the record says 11": _valid_record("hello world")[:-7],
    "text does not match its checksum": _valid_record("hello world").replace(b"world", b"WORLD"),
    "text is not valid UTF-8": _with_body(b"caf\xe9"),
    "metadata without the text's size and digest": b'{"format": 1}\ntext',
}


@pytest.mark.parametrize("reason", list(DAMAGE))
def test_a_damaged_record_is_moved_aside_and_reported(tmp_path: Path, instances: list[Instance], reason: str) -> None:
    dead = dead_instance(tmp_path, instances, ("good text", ""))
    session = tmp_path / "sessions" / dead.session_id
    (session / f"bad{RECORD_SUFFIX}").write_bytes(DAMAGE[reason])
    scan = RecoveryStore(tmp_path).scan()
    assert [c.text for c in scan.candidates] == ["good text"]  # the rest of the session is unharmed
    (note,) = scan.notes
    assert f"({reason})" in note
    (kept,) = (tmp_path / DAMAGED_DIR).iterdir()
    assert kept.read_bytes() == DAMAGE[reason] and not (session / f"bad{RECORD_SUFFIX}").exists()


def test_a_session_of_only_damaged_records_is_cleaned_up_after_setting_them_aside(
    tmp_path: Path, instances: list[Instance]
) -> None:
    dead = dead_instance(tmp_path, instances, ("x", ""))
    session = tmp_path / "sessions" / dead.session_id
    for record in session.glob(f"*{RECORD_SUFFIX}"):
        record.write_bytes(b"\xff\xff\n\xff")
    scan = RecoveryStore(tmp_path).scan()
    assert scan.candidates == () and len(scan.notes) == 1
    assert not session.exists() and len(list((tmp_path / DAMAGED_DIR).iterdir())) == 1


def test_an_empty_or_missing_root_offers_nothing(tmp_path: Path) -> None:
    assert RecoveryStore(tmp_path / "nothing-here").scan().candidates == ()
    assert not (tmp_path / "nothing-here").exists()  # a scan creates nothing


def test_unwritable_store_raises_oserror_for_the_caller_to_report(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        RecoveryStore(blocker / "recovery").session.write("doc", DocumentSnapshot("text"))


def test_the_file_being_opened_is_offered_first(tmp_path: Path, instances: list[Instance]) -> None:
    target = tmp_path / "doc.py"
    dead_instance(tmp_path / "r", instances, ("other", str(tmp_path / "other.py")))
    dead_instance(tmp_path / "r", instances, ("mine", str(target)))
    dead_instance(tmp_path / "r", instances, ("newest", ""))
    scan = RecoveryStore(tmp_path / "r").scan()
    assert [c.text for c in scan.ordered(target)][0] == "mine"
    assert [c.text for c in scan.ordered(None)] == ["newest", "mine", "other"]


def test_file_format_and_disk_fingerprint_come_back(tmp_path: Path) -> None:
    fmt = {"encoding": "cp1252", "bom": False, "newline": "CRLF", "mixed": None}
    disk = {"mtime_ns": 1, "size": 2, "sha256": "ab"}
    gone = RecoveryStore(tmp_path)
    snapshot = DocumentSnapshot("caf\u00e9", tmp_path / "a.txt", 2, file_format=fmt, disk_fingerprint=disk)
    gone.session.write("d", snapshot)
    gone.close()  # stopped with the document unsaved
    (candidate,) = RecoveryStore(tmp_path).scan().candidates
    assert candidate.file_format == fmt and candidate.disk_fingerprint == disk and candidate.caret == 2


def test_preview_shows_the_first_non_blank_lines(tmp_path: Path) -> None:
    store = RecoveryStore(tmp_path)
    other = RecoveryStore(tmp_path)
    store.session.write("d", DocumentSnapshot("\n\nimport os\n\ndef f():\n    pass\nmore\n"))
    store.close()  # a document left behind
    (candidate,) = other.scan().candidates
    assert candidate.preview() == "import os\ndef f():\n    pass"


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_records_round_trip_any_text(text: str) -> None:
    meta, back = decode_record(encode_record("d", DocumentSnapshot(text, caret=3), 12.5))
    assert back == text and meta["caret"] == 3 and meta["saved_at"] == 12.5


def test_a_lone_surrogate_is_kept_not_lost() -> None:
    text = "before \ud800 after"
    assert decode_record(encode_record("d", DocumentSnapshot(text), 1.0))[1] == text
