"""Files on disk: byte-exact round trips, the file's identity kept, changes on disk noticed."""

from __future__ import annotations

import codecs
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import textfile
from app.core.errors import (
    BinaryFileError,
    FileChangedOnDiskError,
    FileTooLargeError,
    NotARegularFileError,
    ReadOnlyFileError,
    UncertainEncodingError,
    UndecodableFileError,
    UnencodableTextError,
)
from app.core.textfile import (
    DiskState,
    Fingerprint,
    Newline,
    TextFormat,
    atomic_write_bytes,
    check_disk,
    decode_bytes,
    encode_text,
    has_changed_on_disk,
    read_text_file,
    save_text_file,
    saved_format,
)

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def resave(path: Path, encoding: str | None = None) -> bytes:
    """Open and save without an edit, the way the window does; return the bytes on disk."""
    loaded = read_text_file(path, encoding=encoding)
    save_text_file(path, loaded.text, loaded.format, expected=loaded.fingerprint)
    return path.read_bytes()


# ------------------------------------------------------- unedited round trips
@pytest.mark.parametrize(
    ("data", "label"),
    [
        (b"a = 1\r\nb = 2\r\n", "UTF-8 · CRLF"),
        (codecs.BOM_UTF8 + b"a = 1\r\nb = 2\r\n", "UTF-8 with BOM · CRLF"),
        (b"classic\rmac\r", "UTF-8 · CR"),
        (b"no newline at the end", "UTF-8 · LF"),
        (b"", "UTF-8 · LF"),
        ("a\u2028b\u00a0c\u2029d\ufeff\n".encode(), "UTF-8 · LF"),
        ("x = '€'\r\n".encode("utf-16"), "UTF-16 LE · CRLF"),
        (codecs.BOM_UTF16_BE + "x = 'ü'\n".encode("utf-16-be"), "UTF-16 BE · LF"),
        (codecs.BOM_UTF32_LE + "x\n".encode("utf-32-le"), "UTF-32 LE · LF"),
        ("naïve café € — “quoted”\r\n".encode("cp1252"), "Windows-1252 · CRLF"),
        ("hello\nworld\n".encode("utf-16-le"), "UTF-16 LE (no BOM) · LF"),
    ],
)
def test_open_and_save_without_edit_is_byte_identical(tmp_path: Path, data: bytes, label: str) -> None:
    path = write(tmp_path / "f.txt", data)
    assert read_text_file(path).format.label == label
    assert resave(path) == data


def test_line_endings_become_newlines_in_the_text_and_come_back_after_an_edit(tmp_path: Path) -> None:
    path = write(tmp_path / "win.py", codecs.BOM_UTF8 + b"def f():\r\n    return 1\r\n")
    loaded = read_text_file(path)
    assert loaded.text == "def f():\n    return 1\n"
    assert (loaded.format.encoding, loaded.format.bom, loaded.format.newline) == ("utf-8", True, Newline.CRLF)
    save_text_file(path, loaded.text + "x = 2\n", loaded.format)
    assert path.read_bytes() == codecs.BOM_UTF8 + b"def f():\r\n    return 1\r\nx = 2\r\n"


def test_mixed_line_endings_are_kept_unedited_and_normalised_with_a_note_once_edited(tmp_path: Path) -> None:
    data = b"a\r\nb\r\nc\nd\r\ne\r"
    path = write(tmp_path / "mixed.txt", data)
    loaded = read_text_file(path)
    fmt = loaded.format
    assert fmt.newline is Newline.CRLF and fmt.mixed is not None
    assert fmt.note is not None and "3 CRLF" in fmt.note and "1 LF" in fmt.note and "1 CR" in fmt.note
    assert "(mixed)" in fmt.label
    assert encode_text(loaded.text, fmt) == data
    assert saved_format(loaded.text, fmt) == fmt
    edited = loaded.text.replace("c", "C")
    assert encode_text(edited, fmt) == b"a\r\nb\r\nC\r\nd\r\ne\r\n"
    assert saved_format(edited, fmt).mixed is None


def test_formats_survive_a_trip_through_json(tmp_path: Path) -> None:
    loaded = read_text_file(write(tmp_path / "m.txt", b"a\r\nb\nc\r\n"))
    assert TextFormat.from_dict(loaded.format.as_dict()) == loaded.format
    assert Fingerprint.from_dict(loaded.fingerprint.as_dict()) == loaded.fingerprint


# ------------------------------------------------------------ property tests
_LINE = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\0"), max_size=12)
_ENDING = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def files(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A text file's bytes: random lines, any line-ending style (or a mix), any encoding/BOM."""
    lines = draw(st.lists(_LINE, max_size=8))
    style = draw(st.sampled_from(["LF", "CRLF", "CR", "mixed"]))
    endings = [draw(_ENDING) if style == "mixed" else {"LF": "\n", "CRLF": "\r\n", "CR": "\r"}[style] for _ in lines]
    last = draw(st.sampled_from(["", "\n", "\r\n", "\r"]))
    text = "".join(line + end for line, end in zip(lines, endings, strict=True)) + draw(_LINE) + last
    encoding, bom = draw(
        st.sampled_from(
            [
                ("utf-8", False),
                ("utf-8", True),
                ("utf-16-le", True),
                ("utf-16-be", True),
                ("utf-32-be", True),
                ("cp1252", False),
            ]
        )
    )
    if encoding == "cp1252":
        text = text.encode("cp1252", errors="ignore").decode("cp1252")
        return text.encode("cp1252"), "cp1252"  # legacy: opened as the person would choose it
    data = text.encode(encoding)
    return (textfile._BOM_OF[encoding] + data if bom else data), None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=files())
def test_property_any_text_file_resaves_to_identical_bytes(tmp_path: Path, case: tuple[bytes, str | None]) -> None:
    data, encoding = case
    path = write(tmp_path / "p.txt", data)
    assert resave(path, encoding) == data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=64))
def test_property_any_bytes_are_refused_or_resaved_identically(tmp_path: Path, data: bytes) -> None:
    """Whatever detection decides, what is opened is written back exactly; the rest is refused."""
    path = write(tmp_path / "b.bin", data)
    try:
        loaded = read_text_file(path)
    except UncertainEncodingError as exc:
        loaded = read_text_file(path, encoding=exc.candidates[0])
    except (BinaryFileError, UndecodableFileError):
        return
    save_text_file(path, loaded.text, loaded.format)
    assert path.read_bytes() == data


# ------------------------------------------------------------------ encodings
def test_binary_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BinaryFileError, match="binary"):
        read_text_file(write(tmp_path / "blob.bin", b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\xff\xfe"))
    with pytest.raises(BinaryFileError):  # NUL decoded from UTF-16 is binary too
        read_text_file(write(tmp_path / "n.txt", codecs.BOM_UTF16_LE + "a\0b".encode("utf-16-le")))


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    with pytest.raises(FileTooLargeError, match="larger than"):
        read_text_file(write(tmp_path / "big.txt", b"x" * 2000), max_bytes=1000)


def test_a_folder_is_not_a_text_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises((NotARegularFileError, IsADirectoryError)):
        read_text_file(tmp_path / "d")


def test_uncertain_8_bit_files_offer_the_likely_encodings_with_samples(tmp_path: Path) -> None:
    path = write(tmp_path / "ru.txt", "# Комментарий: функция\nx = 1\n".encode("cp1251"))
    with pytest.raises(UncertainEncodingError) as caught:
        read_text_file(path)
    error = caught.value
    assert error.candidates[0] == "cp1251" == error.guess
    assert "cp1252" in error.candidates and "koi8-r" in error.candidates
    assert error.samples["cp1251"] == "# Комментарий: функция"
    chosen = read_text_file(path, encoding="cp1251")
    assert chosen.text.startswith("# Комментарий") and chosen.format.label == "Windows-1251 (Cyrillic) · LF"
    assert resave(path, "cp1251") == "# Комментарий: функция\nx = 1\n".encode("cp1251")


def test_latin_text_in_windows_1252_is_detected_without_asking(tmp_path: Path) -> None:
    loaded = read_text_file(write(tmp_path / "de.txt", "Grüße aus München — naïve café €5\n".encode("cp1252")))
    assert loaded.format.encoding == "cp1252"
    assert loaded.text == "Grüße aus München — naïve café €5\n"


def test_a_forced_encoding_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UndecodableFileError, match="UTF-8"):
        read_text_file(write(tmp_path / "l.txt", b"caf\xe9\n"), encoding="utf-8")


def test_an_unencodable_character_names_its_place_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "latin.txt", "café\r\n".encode("cp1252"))
    loaded = read_text_file(path)
    with pytest.raises(UnencodableTextError) as caught:
        save_text_file(path, loaded.text + "x = 'Привет'\n", loaded.format)
    error = caught.value
    assert (error.line, error.column, error.char, error.encoding) == (2, 6, "П", "cp1252")
    assert "Line 2, column 6" in str(error) and "Windows-1252 cannot store" in str(error)
    assert path.read_bytes() == "café\r\n".encode("cp1252")
    # The fallback the window offers: same line endings, UTF-8.
    save_text_file(path, loaded.text + "x = 'Привет'\n", loaded.format.with_encoding("utf-8"))
    assert path.read_bytes() == "café\r\nx = 'Привет'\r\n".encode()


def test_decode_detects_boms_before_anything_else() -> None:
    assert decode_bytes(codecs.BOM_UTF8 + "\ufeffx".encode())[0] == "\ufeffx"  # a second BOM is text
    assert decode_bytes(codecs.BOM_UTF16_LE + "x".encode("utf-16-le"))[1].encoding == "utf-16-le"
    assert decode_bytes(codecs.BOM_UTF32_BE + "x".encode("utf-32-be"))[1].encoding == "utf-32-be"


# --------------------------------------------------------------- identity
def test_saving_through_a_symlink_writes_the_target_and_keeps_the_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    real = write(tmp_path / "real" / "code.py", b"old\n")
    link = tmp_path / "link.py"
    link.symlink_to(os.path.relpath(real, tmp_path))  # relative, like most links
    chain = tmp_path / "chain.py"
    chain.symlink_to(link)
    loaded = read_text_file(chain)
    save_text_file(chain, loaded.text + "new\n", loaded.format, expected=loaded.fingerprint)
    assert chain.is_symlink() and link.is_symlink()
    assert real.read_bytes() == b"old\nnew\n"
    assert sorted(p.name for p in real.parent.iterdir()) == ["code.py"]  # the temp file went away


def test_saving_through_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "missing.txt")
    save_text_file(link, "hello\n", TextFormat.default())
    assert link.is_symlink() and (tmp_path / "missing.txt").read_bytes() == b"hello\n"


def test_a_hard_link_is_kept(tmp_path: Path) -> None:
    first = write(tmp_path / "a.txt", b"one\r\n")
    second = tmp_path / "b.txt"
    os.link(first, second)
    inode = first.stat().st_ino
    loaded = read_text_file(first)
    save_text_file(first, loaded.text + "two\n", loaded.format, expected=loaded.fingerprint)
    assert first.stat().st_ino == inode == second.stat().st_ino
    assert first.stat().st_nlink == 2
    assert second.read_bytes() == b"one\r\ntwo\r\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_an_in_place_write_that_fails_halfway_puts_the_old_bytes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write(tmp_path / "a.txt", b"the old content\n" * 100)
    os.link(first, tmp_path / "b.txt")
    inode = first.stat().st_ino
    real_write_all = textfile._write_all
    failed: list[bool] = []

    def disk_full_on_the_target(fd: int, data: bytes) -> None:
        if os.fstat(fd).st_ino == inode and not failed:
            failed.append(True)
            real_write_all(fd, data[: len(data) // 3])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(fd, data)

    monkeypatch.setattr(textfile, "_write_all", disk_full_on_the_target)
    with pytest.raises(OSError, match="No space"):
        save_text_file(first, "brand new text\n" * 300, TextFormat.default())
    assert failed == [True]
    assert first.read_bytes() == b"the old content\n" * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_permissions_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "run.sh", b"#!/bin/sh\n")
    path.chmod(0o750)
    save_text_file(path, "#!/bin/sh\necho hi\n", TextFormat.default())
    assert stat.S_IMODE(path.stat().st_mode) == 0o750


def test_a_new_file_gets_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    save_text_file(tmp_path / "new.txt", "x\n", TextFormat.default())
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o666 & ~umask


@pytest.mark.skipif(not IS_ROOT, reason="only root can give a file to another owner")
def test_owner_and_group_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "theirs.txt", b"x\n")
    os.chown(path, 4321, 8765)
    save_text_file(path, "y\n", TextFormat.default())
    info = path.stat()
    assert (info.st_uid, info.st_gid, path.read_bytes()) == (4321, 8765, b"y\n")


def test_a_read_only_file_is_written_only_when_agreed_and_stays_read_only(tmp_path: Path) -> None:
    path = write(tmp_path / "ro.txt", b"keep me\n")
    path.chmod(0o444)
    loaded = read_text_file(path)
    with pytest.raises(ReadOnlyFileError, match="read-only"):
        save_text_file(path, "changed\n", loaded.format, expected=loaded.fingerprint)
    assert path.read_bytes() == b"keep me\n"
    save_text_file(path, "changed\n", loaded.format, expected=loaded.fingerprint, overwrite_readonly=True)
    assert path.read_bytes() == b"changed\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_a_read_only_hard_linked_file_stays_read_only_and_linked(tmp_path: Path) -> None:
    path = write(tmp_path / "ro.txt", b"keep me\n")
    os.link(path, tmp_path / "other.txt")
    path.chmod(0o444)
    with pytest.raises(ReadOnlyFileError):
        save_text_file(path, "changed\n", TextFormat.default())
    save_text_file(path, "changed\n", TextFormat.default(), overwrite_readonly=True)
    assert (tmp_path / "other.txt").read_bytes() == b"changed\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444 and path.stat().st_nlink == 2


def test_atomic_write_bytes_keeps_the_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "recovery.json", b"old")
    path.chmod(0o600)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o600

    def fail(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write_bytes(path, b"newer")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["recovery.json"]


# --------------------------------------------------------- changes on disk
def test_a_change_on_disk_is_detected_even_with_the_same_size_and_mtime(tmp_path: Path) -> None:
    path = write(tmp_path / "f.txt", b"version 1\n")
    loaded = read_text_file(path)
    assert check_disk(path, loaded.fingerprint).state is DiskState.UNCHANGED
    mtime = path.stat().st_mtime_ns
    path.write_bytes(b"version 2\n")
    os.utime(path, ns=(mtime, mtime))  # same size, same mtime: only the content tells
    assert check_disk(path, loaded.fingerprint, thorough=True).state is DiskState.MODIFIED
    with pytest.raises(FileChangedOnDiskError):
        save_text_file(path, "mine\n", loaded.format, expected=loaded.fingerprint)
    assert path.read_bytes() == b"version 2\n"


def test_a_new_mtime_with_the_same_content_is_no_change(tmp_path: Path) -> None:
    path = write(tmp_path / "f.txt", b"same\n")
    loaded = read_text_file(path)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    check = check_disk(path, loaded.fingerprint)
    assert check.state is DiskState.UNCHANGED
    assert check.current is not None and check.current.mtime_ns == 1_000_000_000


def test_a_change_of_size_and_a_deletion_are_detected(tmp_path: Path) -> None:
    path = write(tmp_path / "f.txt", b"short\n")
    loaded = read_text_file(path)
    path.write_bytes(b"much longer now\n")
    assert has_changed_on_disk(path, loaded.fingerprint)
    assert check_disk(path, loaded.fingerprint).state is DiskState.MODIFIED
    path.unlink()
    assert check_disk(path, loaded.fingerprint).state is DiskState.DELETED
    # Saving a deleted file writes it again: nothing newer is overwritten.
    save_text_file(path, "back\n", loaded.format, expected=loaded.fingerprint)
    assert path.read_bytes() == b"back\n"


def test_a_save_returns_the_fingerprint_of_what_is_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    fingerprint = save_text_file(path, "a\n", TextFormat(newline=Newline.CRLF))
    assert path.read_bytes() == b"a\r\n"
    assert check_disk(path, fingerprint, thorough=True).state is DiskState.UNCHANGED
    assert fingerprint == textfile.fingerprint_of(path)


@contextmanager
def as_user(uid: int) -> Iterator[None]:
    """Act as a normal user (effective uid), the way Starpad usually runs; the suite runs as root."""
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture()
def shared_folder() -> Iterator[Path]:
    """A folder any user may write in (pytest's own tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="starpad-shared-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to become another user")
def test_read_only_rules_for_a_normal_user(shared_folder: Path) -> None:
    single = write(shared_folder / "single.txt", b"a\n")
    linked = write(shared_folder / "linked.txt", b"a\n")
    os.link(linked, shared_folder / "twin.txt")
    theirs = write(shared_folder / "theirs.txt", b"root's\n")  # 0644, owned by root
    for path in (single, linked):
        os.chown(path, 4242, os.getegid())
        path.chmod(0o444)
    with as_user(4242):
        for path in (single, linked):
            with pytest.raises(ReadOnlyFileError):
                save_text_file(path, "b\n", TextFormat.default())
            save_text_file(path, "b\n", TextFormat.default(), overwrite_readonly=True)
        with pytest.raises(ReadOnlyFileError):
            save_text_file(theirs, "mine\n", TextFormat.default())
        # Even when told to go ahead, another user's file is never replaced by one of ours.
        with pytest.raises(PermissionError):
            save_text_file(theirs, "mine\n", TextFormat.default(), overwrite_readonly=True)
    for path in (single, linked):
        info = path.stat()
        assert (path.read_bytes(), stat.S_IMODE(info.st_mode), info.st_uid) == (b"b\n", 0o444, 4242)
    assert (shared_folder / "twin.txt").read_bytes() == b"b\n" and linked.stat().st_nlink == 2
    assert (theirs.read_bytes(), theirs.stat().st_uid) == (b"root's\n", 0)
    assert sorted(p.name for p in shared_folder.iterdir()) == ["linked.txt", "single.txt", "theirs.txt", "twin.txt"]
