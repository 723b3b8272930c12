"""Text files on disk: read them exactly, write them back exactly, never behind anyone's back.

The promise is byte-exactness: a file that is opened and saved without an edit is
written back with the very bytes it had. So reading remembers everything the decoded
text alone does not say — the encoding, whether there was a byte-order mark, the
line-ending style (and, for a file that mixes styles, every line's own ending) — in a
:class:`TextFormat`, and :func:`encode_text` rebuilds the bytes from text + format.
:func:`read_text_file` checks that round trip on every file it opens, so a file Starpad
could not write back identically is refused instead of being damaged later.

Saving keeps the file's identity: the write goes through symlinks to the real file, a
file with several hard links is rewritten in place (a rename would split the links),
mode, owner and extended attributes (ACLs, SELinux labels) are carried over, and a
read-only file is only written when the caller says the person agreed to it.

A :class:`Fingerprint` (mtime, size and a SHA-256 of the content) is taken whenever a
file is read or written, so a change made on disk by another program is noticed
(:func:`check_disk`) instead of being overwritten silently.

No Qt here: the window, the CLI and the recovery code share this module.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import logging
import os
import re
import secrets
import stat
import unicodedata
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from app.core.errors import (
    BinaryFileError,
    FileChangedOnDiskError,
    FileTooLargeError,
    NotARegularFileError,
    ReadOnlyFileError,
    TextFileError,
    UncertainEncodingError,
    UndecodableFileError,
    UnencodableTextError,
)
from app.core.units import format_bytes

log = logging.getLogger("starpad.files")

_HASH_CHUNK = 1 << 20


# ----------------------------------------------------------------- formats
class Newline(Enum):
    """A line-ending style."""

    LF = "\n"
    CRLF = "\r\n"
    CR = "\r"

    @property
    def label(self) -> str:
        return self.name


#: One character per line break in ``MixedEndings.endings`` (compact: a 1M-line file costs 1 MB).
_CODE_OF = {"\n": "n", "\r\n": "c", "\r": "r"}
_ENDING_OF = {"n": "\n", "c": "\r\n", "r": "\r"}
_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class MixedEndings:
    """A file whose lines end in more than one style, recorded line by line.

    As long as the text is unchanged (same digest) every line gets its own ending back,
    so an unedited save is byte-identical. Once the text is edited there is no honest way
    to say which ending a new or moved line should have, so every line is written with
    the dominant style — and the person is told so when the file is opened (``note``).
    """

    counts: tuple[tuple[Newline, int], ...]
    endings: str = field(repr=False)
    digest: str = field(repr=False)


@dataclass(frozen=True)
class TextFormat:
    """Everything about a file's bytes that its decoded text does not tell."""

    encoding: str = "utf-8"  # a canonical Python codec name (codecs.lookup(...).name)
    bom: bool = False
    newline: Newline = Newline.LF  # the style new text is written with (the dominant one)
    mixed: MixedEndings | None = None

    @classmethod
    def default(cls) -> TextFormat:
        """A new file: UTF-8 without a BOM, LF line endings."""
        return cls()

    @property
    def encoding_label(self) -> str:
        """``UTF-8``, ``UTF-8 with BOM``, ``UTF-16 LE`` (a BOM is the norm there), ``Windows-1252``…"""
        name = _DISPLAY_NAMES.get(self.encoding, self.encoding.upper())
        if self.encoding == "utf-8":
            return f"{name} with BOM" if self.bom else name
        if self.encoding.startswith(("utf-16", "utf-32")) and not self.bom:
            return f"{name} (no BOM)"
        return name

    @property
    def label(self) -> str:
        """Short text for the status bar, e.g. ``UTF-8 · CRLF`` or ``Windows-1252 · LF (mixed)``."""
        return f"{self.encoding_label} · {self.newline.label}{' (mixed)' if self.mixed else ''}"

    @property
    def note(self) -> str | None:
        """Something the person must be told about this file, or None."""
        if self.mixed is None:
            return None
        counts = ", ".join(f"{count:,} {newline.label}" for newline, count in self.mixed.counts if count)
        return (
            f"This file mixes line endings ({counts}). Saved without edits it stays byte-identical; "
            f"once edited, every line is saved with {self.newline.label}."
        )

    def with_encoding(self, encoding: str, *, bom: bool = False) -> TextFormat:
        """The same line endings in another encoding (the 'save as UTF-8 instead' fallback)."""
        return replace(self, encoding=canonical_encoding(encoding), bom=bom)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able form (for recovery files)."""
        mixed = None
        if self.mixed is not None:
            mixed = {
                "counts": [[n.name, c] for n, c in self.mixed.counts],
                "endings": self.mixed.endings,
                "digest": self.mixed.digest,
            }
        return {"encoding": self.encoding, "bom": self.bom, "newline": self.newline.name, "mixed": mixed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextFormat:
        mixed = None
        if data.get("mixed"):
            raw = data["mixed"]
            counts = tuple((Newline[name], int(count)) for name, count in raw["counts"])
            mixed = MixedEndings(counts, str(raw["endings"]), str(raw["digest"]))
        return cls(canonical_encoding(str(data["encoding"])), bool(data["bom"]), Newline[data["newline"]], mixed)


_DISPLAY_NAMES = {
    "utf-8": "UTF-8",
    "utf-16-le": "UTF-16 LE",
    "utf-16-be": "UTF-16 BE",
    "utf-32-le": "UTF-32 LE",
    "utf-32-be": "UTF-32 BE",
    "cp1252": "Windows-1252",
    "iso8859-1": "ISO-8859-1 (Latin-1)",
    "iso8859-15": "ISO-8859-15 (Latin-9)",
    "cp1250": "Windows-1250 (Central European)",
    "iso8859-2": "ISO-8859-2 (Central European)",
    "cp1251": "Windows-1251 (Cyrillic)",
    "koi8-r": "KOI8-R (Russian)",
    "cp1253": "Windows-1253 (Greek)",
    "cp1254": "Windows-1254 (Turkish)",
    "cp1257": "Windows-1257 (Baltic)",
    "cp437": "CP437 (DOS)",
    "cp850": "CP850 (DOS Latin-1)",
    "mac-roman": "Mac Roman",
    "shift_jis": "Shift JIS",
    "euc_jp": "EUC-JP",
    "gb18030": "GB18030 (Chinese)",
    "big5": "Big5 (Traditional Chinese)",
    "euc_kr": "EUC-KR (Korean)",
}

#: Offered when a file is neither Unicode nor confidently Windows-1252, most common first.
LEGACY_ENCODINGS = (
    "cp1252",
    "iso8859-1",
    "iso8859-15",
    "cp1250",
    "iso8859-2",
    "cp1251",
    "koi8-r",
    "cp1253",
    "cp1254",
    "cp1257",
    "cp437",
    "cp850",
    "mac-roman",
    "shift_jis",
    "euc_jp",
    "gb18030",
    "big5",
    "euc_kr",
)

_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_BOM_OF = {encoding: bom for bom, encoding in _BOMS}


def canonical_encoding(name: str) -> str:
    """``latin-1`` → ``iso8859-1`` and so on; raises LookupError for an unknown name."""
    return codecs.lookup(name).name


def encoding_display_name(encoding: str) -> str:
    canonical = canonical_encoding(encoding)
    return _DISPLAY_NAMES.get(canonical, canonical.upper())


# ------------------------------------------------------------ fingerprints
@dataclass(frozen=True)
class Fingerprint:
    """What a file looked like when Starpad last read or wrote it."""

    mtime_ns: int
    size: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"mtime_ns": self.mtime_ns, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprint:
        return cls(int(data["mtime_ns"]), int(data["size"]), str(data["sha256"]))


class DiskState(Enum):
    UNCHANGED = "unchanged"
    MODIFIED = "modified"  # other content than the fingerprint's
    DELETED = "deleted"  # nothing at the path any more
    UNREADABLE = "unreadable"  # there, but it cannot be read now (permissions): nothing to compare


@dataclass(frozen=True)
class DiskCheck:
    state: DiskState
    #: The file as it is now (None when deleted/unreadable). For UNCHANGED it may carry a
    #: newer mtime than the old fingerprint (touched, same content): adopt it to skip re-hashing.
    current: Fingerprint | None


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint_of(path: Path) -> Fingerprint:
    """The file's fingerprint now (reads the whole file to hash it)."""
    before = os.stat(path)
    sha = _sha256_of(path)
    return Fingerprint(before.st_mtime_ns, before.st_size, sha)


def check_disk(path: Path, known: Fingerprint, *, thorough: bool = False) -> DiskCheck:
    """Has the file at ``path`` changed since ``known`` was taken?

    The quick check (window activation) trusts an unchanged mtime and size and only hashes
    when they differ, so a touched-but-identical file is no false alarm. ``thorough``
    (before a save) always hashes: a same-size rewrite inside one mtime tick cannot slip by.
    """
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return DiskCheck(DiskState.DELETED, None)
    except OSError:
        return DiskCheck(DiskState.UNREADABLE, None)
    if now.st_size != known.size:
        return DiskCheck(DiskState.MODIFIED, Fingerprint(now.st_mtime_ns, now.st_size, ""))
    if not thorough and now.st_mtime_ns == known.mtime_ns:
        return DiskCheck(DiskState.UNCHANGED, known)
    try:
        current = fingerprint_of(path)
    except FileNotFoundError:
        return DiskCheck(DiskState.DELETED, None)
    except OSError:
        return DiskCheck(DiskState.UNREADABLE, None)
    same = current.sha256 == known.sha256 and current.size == known.size
    return DiskCheck(DiskState.UNCHANGED if same else DiskState.MODIFIED, current)


def has_changed_on_disk(path: Path, known: Fingerprint, *, thorough: bool = False) -> bool:
    """True when the file was modified or deleted since ``known`` was taken."""
    return check_disk(path, known, thorough=thorough).state in (DiskState.MODIFIED, DiskState.DELETED)


# ----------------------------------------------------------------- reading
@dataclass(frozen=True)
class LoadedText:
    path: Path
    text: str  # lines end in "\n" whatever the file used
    format: TextFormat
    fingerprint: Fingerprint


def _split_endings(raw_text: str) -> tuple[str, Newline, MixedEndings | None]:
    """Normalise line endings to ``\\n`` and remember what they were."""
    crlf = raw_text.count("\r\n")
    cr = raw_text.count("\r") - crlf
    lf = raw_text.count("\n") - crlf
    counts = ((Newline.LF, lf), (Newline.CRLF, crlf), (Newline.CR, cr))
    # The most frequent style wins; ties go to LF, then CRLF. No line break at all: LF.
    dominant = max(counts, key=lambda item: item[1])[0]
    kinds = sum(1 for _n, count in counts if count)
    if kinds <= 1:
        if dominant is Newline.LF:
            return raw_text, Newline.LF, None
        return raw_text.replace(dominant.value, "\n"), dominant, None
    endings = "".join(_CODE_OF[match.group()] for match in _BREAK.finditer(raw_text))
    text = _BREAK.sub("\n", raw_text)
    return text, dominant, MixedEndings(counts, endings, _text_digest(text))


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _strip_bom(raw: bytes) -> tuple[str | None, bytes]:
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            if encoding == "utf-32-le" and len(raw) % 4:
                continue  # FF FE 00 00 that is not UTF-32: a UTF-16 LE file starting with U+0000
            return encoding, raw[len(bom) :]
    return None, raw


#: Control characters that do not occur in text files (tab, line breaks, form feed and ESC do).
_BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f]")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def _looks_like_text(text: str) -> bool:
    return _BINARY_CONTROLS.search(text) is None


def _bomless_utf16(raw: bytes) -> str | None:
    """UTF-16 without a byte-order mark, recognised only when the evidence is strong.

    Mostly-ASCII UTF-16 has a zero in every other byte and none in the other half; the
    decoded text must also be free of control characters. Anything less is binary.
    """
    if len(raw) < 4 or len(raw) % 2:
        return None
    zeros_even = raw[0::2].count(0)
    zeros_odd = raw[1::2].count(0)
    pairs = len(raw) // 2
    for encoding, zeros, others in (("utf-16-le", zeros_odd, zeros_even), ("utf-16-be", zeros_even, zeros_odd)):
        if others == 0 and zeros >= pairs // 2:
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError:
                return None
            return encoding if _looks_like_text(text) else None
    return None


_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]+")


def _legacy_guess(raw: bytes) -> tuple[str, bool]:
    """(encoding, sure) for bytes that are not UTF-8.

    Windows-1252 is the usual answer (it is Latin-1 plus printable characters in 0x80-0x9F)
    and is trusted when the text reads like Latin-script text: a few accented letters or
    typographic marks between ASCII. Long runs of non-ASCII letters mean another script
    (Cyrillic in CP1251 decodes to plausible-looking Latin-1 letters too), valid UTF-8
    sequences mean a UTF-8 file with a few broken bytes: then the person chooses.
    """
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        return "iso8859-1", False
    if _UTF8_MULTIBYTE.search(raw) or not _looks_like_text(text):
        return "cp1252", False
    runs = [len(match.group()) for match in _NON_ASCII_RUN.finditer(text)]
    in_long_runs = sum(run for run in runs if run >= 3)
    return "cp1252", in_long_runs * 10 < sum(runs) * 3


def _sample(raw: bytes, encoding: str, limit: int = 60) -> str:
    """The first line with non-ASCII bytes, decoded with ``encoding`` (for choosing one)."""
    first = re.search(rb"[\x80-\xff]", raw)
    start = first.start() if first else 0
    line_start = raw.rfind(b"\n", 0, start) + 1
    line_end = raw.find(b"\n", start)
    line = raw[line_start : line_end if line_end >= 0 else len(raw)]
    text = line.decode(encoding, errors="replace").strip()
    return text[:limit] + ("…" if len(text) > limit else "")


def _round_trips(raw: bytes, encoding: str) -> bool:
    try:
        return raw.decode(encoding).encode(encoding) == raw
    except (UnicodeDecodeError, UnicodeEncodeError):
        return False


_WORD = re.compile(r"[^\W\d_]+")


def _script(ch: str) -> str:
    return "LATIN" if ch < "\x80" else unicodedata.name(ch, "?").split(" ")[0]


def _plausibility(sample: str) -> int:
    """How much ``sample`` reads like real words: a rough score to order the choices.

    Each non-ASCII letter counts for its encoding when its word is in one script and in
    a normal case pattern (lower, UPPER or Title), and against it otherwise. A wrong code
    page breaks one or the other (Cyrillic in KOI8-R read as Windows-1251 comes out in
    mixed case, Polish read as Windows-1251 mixes scripts), except Cyrillic or Greek read
    as Latin-1, which gives Latin letters: those show as words without a single ASCII
    letter, which real Latin-script words rarely are.
    """
    score = 0
    for word in _WORD.findall(sample):
        non_ascii = sum(1 for ch in word if ch >= "\x80")
        if not non_ascii:
            continue
        scripts = {_script(ch) for ch in word}
        cased = word.islower() or word.isupper() or word.istitle()
        all_foreign_latin = scripts == {"LATIN"} and non_ascii == len(word) and len(word) >= 3
        score += non_ascii if len(scripts) == 1 and cased and not all_foreign_latin else -non_ascii
    return score


def legacy_candidates(raw: bytes, guess: str) -> tuple[str, ...]:
    """Encodings that decode ``raw`` and give exactly its bytes back, the likeliest first.

    ``guess`` leads among equally likely ones (the order of ``LEGACY_ENCODINGS`` after it).
    """
    order = [guess, *(e for e in LEGACY_ENCODINGS if e != guess)]
    fitting = [e for e in order if _round_trips(raw, e) and "\0" not in raw.decode(e)]
    sample = raw[: 64 * 1024]
    scores = {e: _plausibility(sample.decode(e, errors="replace")) for e in fitting}
    return tuple(sorted(fitting, key=lambda e: -scores[e]))  # stable: ties keep the order above


def encoding_choices(raw: bytes) -> list[tuple[str, str]]:
    """(encoding, sample) for every encoding Starpad offers that holds ``raw`` exactly.

    For "Reopen with encoding": the person corrects a guess that read plausibly but wrong.
    """
    choices = []
    wide = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be") if b"\0" in raw else ()  # else: garbage CJK
    for encoding in ("utf-8", *wide, *LEGACY_ENCODINGS):
        try:
            decode_bytes(raw, encoding)
        except (TextFileError, LookupError):
            continue
        choices.append((encoding, _sample(raw, encoding)))
    return choices


def decode_bytes(raw: bytes, encoding: str | None = None, *, name: str = "the file") -> tuple[str, TextFormat]:
    """Decode a whole file: (text with ``\\n`` line breaks, its format).

    ``encoding`` None detects it: a byte-order mark, then UTF-8, then a legacy 8-bit guess
    (raising :class:`UncertainEncodingError` with the candidates when unsure). The round
    trip back to ``raw`` is verified: a file that could not be saved identically is refused.
    """
    bom_encoding, body = _strip_bom(raw)
    if encoding is not None:
        chosen = canonical_encoding(encoding)
        if chosen in ("utf-16", "utf-32"):
            chosen = bom_encoding if bom_encoding and bom_encoding.startswith(chosen) else f"{chosen}-le"
        bom = bom_encoding == chosen
        body = body if bom else raw
    elif bom_encoding is not None:
        chosen, bom = bom_encoding, True
    elif b"\0" in raw:
        utf16 = _bomless_utf16(raw)
        if utf16 is None:
            raise BinaryFileError(f"{name} looks like a binary file, not text")
        chosen, bom = utf16, False
    else:
        try:
            raw.decode("utf-8")
            chosen, bom = "utf-8", False
        except UnicodeDecodeError:
            guess, sure = _legacy_guess(raw)
            if not sure:
                candidates = legacy_candidates(raw, guess)
                if not candidates:
                    raise BinaryFileError(f"{name} is not text in any encoding Starpad knows") from None
                samples = {e: _sample(raw, e) for e in candidates}
                raise UncertainEncodingError(
                    f"{name} is not UTF-8, and its encoding is not certain: choose the one it reads right in",
                    guess=candidates[0],
                    candidates=candidates,
                    samples=samples,
                ) from None
            chosen, bom = guess, False
    try:
        raw_text = body.decode(chosen)
    except UnicodeDecodeError as exc:
        raise UndecodableFileError(
            f"{name} is not valid {encoding_display_name(chosen)} (byte {exc.start + (len(raw) - len(body)):,})"
        ) from None
    if "\0" in raw_text:
        raise BinaryFileError(f"{name} looks like a binary file, not text")
    text, newline, mixed = _split_endings(raw_text)
    fmt = TextFormat(chosen, bom, newline, mixed)
    if encode_text(text, fmt) != raw:
        raise UndecodableFileError(
            f"{name} cannot be kept byte-for-byte in {encoding_display_name(chosen)}; "
            "Starpad does not open files it could not save back unchanged"
        )
    return text, fmt


def read_text_file(path: Path, *, encoding: str | None = None, max_bytes: int | None = None) -> LoadedText:
    """Read, detect, decode and fingerprint a text file (see :func:`decode_bytes`)."""
    path = Path(path)
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFileError(f"{path.name} is not a regular file")
        if max_bytes is not None and info.st_size > max_bytes:
            raise FileTooLargeError(
                f"{path.name} is {format_bytes(info.st_size)}: larger than the editor's {format_bytes(max_bytes)} limit"
            )
        raw = handle.read()
    text, fmt = decode_bytes(raw, encoding, name=path.name)
    fingerprint = Fingerprint(info.st_mtime_ns, len(raw), hashlib.sha256(raw).hexdigest())
    log.info("opened %s: %s, %s bytes", path, fmt.label, f"{len(raw):,}")
    return LoadedText(path, text, fmt, fingerprint)


# ---------------------------------------------------------------- encoding
def _with_endings(text: str, fmt: TextFormat) -> str:
    mixed = fmt.mixed
    if mixed is not None and _text_digest(text) == mixed.digest:
        parts = text.split("\n")
        pieces: list[str] = []
        for part, code in zip(parts, mixed.endings, strict=False):  # one part more than endings
            pieces.append(part)
            pieces.append(_ENDING_OF[code])
        pieces.append(parts[-1])
        return "".join(pieces)
    return text if fmt.newline is Newline.LF else text.replace("\n", fmt.newline.value)


def encode_text(text: str, fmt: TextFormat) -> bytes:
    """The file's bytes for ``text`` (``\\n`` line breaks) in ``fmt``.

    Raises :class:`UnencodableTextError` naming the first character the encoding cannot
    store, with its line and column; the caller still has the text.
    """
    body = _with_endings(text, fmt)
    try:
        data = body.encode(fmt.encoding)
    except UnicodeEncodeError as exc:
        char = exc.object[exc.start]
        index = text.find(char)
        line = text.count("\n", 0, index) + 1
        column = index - (text.rfind("\n", 0, index) + 1) + 1
        try:
            char_name = unicodedata.name(char)
        except ValueError:
            char_name = "unnamed character"
        raise UnencodableTextError(
            f"Line {line}, column {column} has “{char}” (U+{ord(char):04X} {char_name}), "
            f"which {encoding_display_name(fmt.encoding)} cannot store.",
            encoding=fmt.encoding,
            char=char,
            line=line,
            column=column,
        ) from None
    return _BOM_OF[fmt.encoding] + data if fmt.bom else data


def saved_format(text: str, fmt: TextFormat) -> TextFormat:
    """The format the file has after ``text`` is saved in ``fmt``.

    Only a mixed-endings file changes: edited, it is written with the dominant style
    throughout, so it is not mixed any more.
    """
    if fmt.mixed is not None and _text_digest(text) != fmt.mixed.digest:
        return replace(fmt, mixed=None)
    return fmt


# ----------------------------------------------------------------- writing
def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); not possible or needed everywhere."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _real_target(path: Path) -> Path:
    """Where the bytes really go: symlinks (chains, relative ones) resolved, a dangling one too."""
    return Path(os.path.realpath(path))


def _temp_beside(target: Path, mode: int) -> tuple[int, Path]:
    """A new file in the target's folder (so the rename stays on one file system)."""
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.starpad-tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(target.parent))


def _is_read_only(target: Path, info: os.stat_result) -> bool:
    """Read-only for this person: no write permission (for root: no write bit at all)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return not info.st_mode & 0o222
    return not _is_writable(target)


def _is_writable(path: Path) -> bool:
    return os.access(path, os.W_OK, effective_ids=os.access in os.supports_effective_ids)


def _can_recreate(info: os.stat_result) -> bool:
    """Could a replacement file get this file's owner and group? Otherwise rewrite in place."""
    if not hasattr(os, "geteuid"):
        return True
    euid = os.geteuid()
    if euid == 0:
        return True
    return info.st_uid == euid and (info.st_gid == os.getegid() or info.st_gid in os.getgroups())


def _copy_metadata(fd: int, source: Path, info: os.stat_result) -> None:
    """Owner, group, mode and extended attributes of the old file onto the new one."""
    if hasattr(os, "fchown") and hasattr(os, "geteuid"):
        if (info.st_uid, info.st_gid) != (os.geteuid(), os.getegid()):
            try:
                os.fchown(fd, info.st_uid, info.st_gid)  # before chmod: chown clears set-id bits
            except OSError as exc:
                log.warning("could not keep the owner of %s: %s", source, exc)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, stat.S_IMODE(info.st_mode))
    if hasattr(os, "listxattr"):
        try:
            names = os.listxattr(source)
        except OSError:
            return
        for name in names:
            try:
                os.setxattr(fd, name, os.getxattr(source, name))
            except OSError as exc:
                log.info("could not copy the extended attribute %s of %s: %s", name, source, exc)


def _replace_atomically(target: Path, data: bytes, info: os.stat_result | None, *, exclusive: bool = True) -> None:
    """Write a temporary file beside ``target``, fsync it, then rename it over ``target``.

    At every moment the path holds either the complete old file or the complete new one.
    A new file gets the usual permissions (0666 less the umask); a replaced one keeps its own.
    ``exclusive``: a new file never replaces one that appeared meanwhile.
    """
    fd, tmp = _temp_beside(target, 0o666 if info is None else 0o600)
    try:
        _write_all(fd, data)
        if info is not None:
            _copy_metadata(fd, target, info)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        if info is None and exclusive and hasattr(os, "link"):
            # A new file must not replace one that appeared meanwhile: link fails if it exists.
            try:
                os.link(tmp, target)
                os.unlink(tmp)
            except FileExistsError:
                raise FileExistsError(errno.EEXIST, "a file appeared there while saving", str(target)) from None
            except OSError:  # a file system without hard links
                os.replace(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def _write_in_place(target: Path, data: bytes, info: os.stat_result, *, make_writable: bool) -> None:
    """Rewrite the file's own inode: hard links and ownership stay exactly as they are.

    Not atomic by nature, so: the new bytes are first written and fsynced to a file beside
    the target (if the machine dies mid-write, the new text is there), the old bytes are
    kept in memory, and a write that fails halfway (disk full) puts the old bytes back —
    that always fits, because it only overwrites blocks the file already had.
    """
    old = target.read_bytes()
    spare: Path | None
    try:
        fd, new_copy = _temp_beside(target, 0o600)
    except OSError:
        spare = None  # a folder we may not create files in: no spare copy, the restore still holds
    else:
        spare = new_copy
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            new_copy.unlink(missing_ok=True)
            raise
        os.close(fd)
    mode = stat.S_IMODE(info.st_mode)
    chmodded = False
    try:
        if make_writable and not mode & stat.S_IWUSR and not _is_writable(target):
            os.chmod(target, mode | stat.S_IWUSR)  # owner only, for the moment of the write
            chmodded = True
        fd = os.open(target, os.O_WRONLY | getattr(os, "O_BINARY", 0))
        try:
            try:
                _write_all(fd, data)
                os.ftruncate(fd, len(data))
                os.fsync(fd)
            except BaseException:
                try:
                    os.lseek(fd, 0, os.SEEK_SET)
                    _write_all(fd, old)
                    os.ftruncate(fd, len(old))
                    os.fsync(fd)
                except OSError:
                    log.error("could not restore %s after a failed write; the new text is in %s", target, spare)
                    spare = None  # keep it: it may be the only copy of the new text on disk
                raise
        finally:
            os.close(fd)
    finally:
        if chmodded:
            os.chmod(target, mode)
        if spare is not None:
            spare.unlink(missing_ok=True)


def write_file_bytes(path: Path, data: bytes, *, overwrite_readonly: bool = False) -> Fingerprint:
    """Save ``data`` to ``path`` keeping the file's identity; return the new fingerprint.

    - a symlink is followed: the real file is written, the link stays a link;
    - a file with several hard links, or whose owner a new file could not get, is
      rewritten in place (see :func:`_write_in_place`); anything else is replaced
      atomically, with mode, owner, group and extended attributes carried over;
    - a read-only file raises :class:`ReadOnlyFileError` unless ``overwrite_readonly``
      (the person agreed); it is read-only again afterwards.
    """
    path = Path(path)
    target = _real_target(path)
    try:
        info: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        info = None
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFileError(f"{path} is not a regular file; Starpad saves only into regular files")
        if _is_read_only(target, info) and not overwrite_readonly:
            raise ReadOnlyFileError(f"{path.name} is read-only", path=path)
    if info is None:
        _replace_atomically(target, data, None)
    elif info.st_nlink > 1 or not _can_recreate(info):
        _write_in_place(target, data, info, make_writable=overwrite_readonly)
    else:
        try:
            _replace_atomically(target, data, info)
        except PermissionError:
            if not _is_writable(target.parent) and _is_writable(target):
                # No new files allowed in this folder, but the file itself is writable.
                _write_in_place(target, data, info, make_writable=False)
            else:
                raise
    after = os.stat(target)
    if path != target:
        log.info("saved %s through to %s", path, target)
    return Fingerprint(after.st_mtime_ns, after.st_size, hashlib.sha256(data).hexdigest())


def save_text_file(
    path: Path,
    text: str,
    fmt: TextFormat,
    *,
    overwrite_readonly: bool = False,
    expected: Fingerprint | None = None,
) -> Fingerprint:
    """Encode ``text`` in ``fmt`` and save it (see :func:`write_file_bytes`).

    ``expected`` is the fingerprint of the version the text was based on: if the file now
    holds something else, :class:`FileChangedOnDiskError` is raised and nothing is written.
    A file that was deleted meanwhile is simply written again.
    """
    path = Path(path)
    data = encode_text(text, fmt)  # before touching anything: an unencodable text writes nothing
    if expected is not None:
        state = check_disk(path, expected, thorough=True).state
        if state is DiskState.MODIFIED:
            raise FileChangedOnDiskError(f"{path.name} was changed on disk since it was opened or saved", path=path)
    fingerprint = write_file_bytes(path, data, overwrite_readonly=overwrite_readonly)
    log.info("saved %s: %s, %s bytes", path, fmt.label, f"{len(data):,}")
    return fingerprint


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (for Starpad's own files, e.g. recovery).

    Temp file beside the real target, fsync, rename; the old file survives any failure.
    An existing file keeps its mode and owner; a new one gets the usual permissions.
    """
    target = _real_target(Path(path))
    try:
        info: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise NotARegularFileError(f"{path} is not a regular file")
    _replace_atomically(target, data, info, exclusive=False)


__all__ = [
    "DiskCheck",
    "DiskState",
    "Fingerprint",
    "LEGACY_ENCODINGS",
    "LoadedText",
    "MixedEndings",
    "Newline",
    "TextFileError",
    "TextFormat",
    "atomic_write_bytes",
    "canonical_encoding",
    "check_disk",
    "decode_bytes",
    "encode_text",
    "encoding_choices",
    "encoding_display_name",
    "fingerprint_of",
    "has_changed_on_disk",
    "legacy_candidates",
    "read_text_file",
    "save_text_file",
    "saved_format",
    "write_file_bytes",
]
