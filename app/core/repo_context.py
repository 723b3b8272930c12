"""Repository context in StarCoder2's own layout: which other files a prompt carries.

StarCoder2 was trained on whole repositories laid out as ``<repo_name>``name
``<file_sep>``path\\ncode``<file_sep>``path\\ncode…, with fill-in-the-middle applied to one
file's text. This module decides *what* goes into that block; ``app.core.fim`` lays it
out as tokens. It imports no Qt: the window's session, the CLI (``complete --repo``) and
the tests build exactly the same block.

Choices, and why:

* **Which files.** The most relevant first: files the current one imports (small
  resolvers for Python, JS/TS and C/C++ — an import is the strongest hint of what the
  code at the caret uses), then the other open tabs (what the user is working on), then
  recently edited files. Open tabs contribute their text *as in the editor*, unsaved
  edits included; other files come from disk.
* **What does not fit whole** contributes 64-line chunks (llama.vim's size) around the
  lines recently seen or edited in it: a cut-off file would teach the model a truncated
  file, a chunk around the user's last place is what they most likely refer to.
* **Order in the prompt.** Far first, near last: recently edited files, then open tabs,
  then imports, each group sorted by path. The most relevant code then sits next to the
  caret's file, and the order depends only on the *set* of files — switching away from a
  tab and back gives the very same block, which the engine's KV snapshot still holds.
  When the engine's budget is smaller than planned, it drops from the front (the far end).
* **Never secrets.** Files the folder hides (its ``.gitignore`` files, build outputs) and
  files that look like secrets (``.env*``, ``*.pem``, ``*.key``, SSH keys, credentials…)
  never enter a prompt — the folder view's own rules, ``app.core.workspace.ignore``; with a
  remote engine, neither does anything outside the workspace root.
* **Stability** is the caller's job (``CompletionSession``): a block is rebuilt only when
  the set of relevant files changes, never on a keystroke, so it stays in the KV cache.
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from app.core.fim import RepoFile
from app.core.repo import git_root
from app.core.workspace.ignore import WorkspaceRules, is_secret

log = logging.getLogger("starpad.repo_context")

#: llama.vim's chunk size; chunks start on multiples of ``CHUNK_STEP`` so that a caret
#: moving a few lines keeps choosing the same chunk.
CHUNK_LINES = 64
CHUNK_STEP = 32
#: At most this many chunks of one file (its most recent places).
MAX_CHUNKS_PER_FILE = 4
#: Places remembered per file (most recent first).
MAX_REGIONS_PER_FILE = 8
#: Candidates considered at all (imports + tabs + recent files).
MAX_CANDIDATES = 40
#: Files larger than this are not read from disk (generated code, data dumps).
MAX_READ_BYTES = 4_000_000

CountTokens = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """A conservative token count when no tokenizer is at hand (StarCoder2's BPE averages
    3.5–4 characters per token on code; 3 leaves room, and the engine checks exactly)."""
    return (len(text) + 2) // 3


class Relevance(enum.IntEnum):
    """Why a file is in the context; lower is more relevant (picked first, placed last)."""

    IMPORT = 0
    OPEN = 1
    RECENT = 2


class SkipReason(str, enum.Enum):
    SECRET = "looks like a secret"
    IGNORED = "ignored by .gitignore"
    OUTSIDE = "outside the workspace (remote engine)"
    UNREADABLE = "not readable UTF-8 text"
    TOO_BIG = "too large to read"
    NO_ROOM = "no room in the budget"
    SWITCHED_OFF = "switched off"


# ------------------------------------------------------------------ secrets and ignores


def looks_secret(path: Path) -> bool:
    """True for a file whose name or folders say it holds credentials: the workspace's one
    definition (``app.core.workspace.ignore.is_secret``: ``.env*``, ``*.pem``, ``*.key``,
    SSH keys, credentials files…), so the folder view and the prompt agree."""
    return is_secret(path)


class PathFilter(Protocol):
    """What keeps a file out of every prompt (a reason), or None."""

    def excluded(self, path: Path) -> SkipReason | None: ...


class WorkspaceFilter:
    """The open folder's rules (``WorkspaceRules``: ``.gitignore`` files from the git root
    down, ``.git/info/exclude``, build outputs and caches) and secrets by name. Made anew
    for each block, so an edited ``.gitignore`` counts from the next rebuild on."""

    def __init__(self, root: Path) -> None:
        self._rules = WorkspaceRules(root)

    def excluded(self, path: Path) -> SkipReason | None:
        relative = self._rules.relative(path)
        # Inside the folder its path from there is judged (the folders above the project,
        # say a home under ``.docker/``, are not the file's business); outside, the whole path.
        if looks_secret(Path(relative) if relative else path):
            return SkipReason.SECRET
        if not relative:
            return None  # outside the folder: its .gitignore says nothing about it
        return SkipReason.IGNORED if self._rules.is_ignored(relative) else None


# ------------------------------------------------------------------------- resolvers

PY_SUFFIXES = frozenset({".py", ".pyi", ".pyw"})
JS_SUFFIXES = frozenset({".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts", ".vue", ".svelte"})
C_SUFFIXES = frozenset({".c", ".h", ".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp", ".inl",
                        ".m", ".mm", ".cu", ".cuh", ".ino"})
JS_RESOLVE_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts", ".vue", ".svelte",
                         ".json")

_PY_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w. \t,]+)", re.MULTILINE)
_PY_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)?|[^\n#;]*)", re.MULTILINE)
_JS_SPEC = re.compile(r"""(?:\bfrom|\bimport|\brequire\s*\(|\bimport\s*\()\s*(['"])(\.{1,2}(?:/[^'"\n]*)?)\1""")
_C_INCLUDE = re.compile(r"""^[ \t]*#[ \t]*include[ \t]*(?:"([^"\n]+)"|<([^>\n]+)>)""", re.MULTILINE)


def resolve_imports(path: Path, text: str, root: Path) -> tuple[Path, ...]:
    """The files inside ``root`` that ``text`` (the file at ``path``) imports, in the order
    of their first import. Only files that exist count; the file itself never does."""
    suffix = path.suffix.lower()
    if suffix in PY_SUFFIXES:
        found: Iterable[Path] = _python_imports(path, text, root)
    elif suffix in JS_SUFFIXES:
        found = _js_imports(path, text)
    elif suffix in C_SUFFIXES:
        found = _c_includes(path, text, root)
    else:
        return ()
    result: dict[Path, None] = {}
    me = _resolve(path)
    for candidate in dict.fromkeys(found):
        resolved = _resolve(candidate)
        if resolved is None or resolved == me or resolved in result or not _inside(resolved, root):
            continue
        result[resolved] = None
    return tuple(result)


def _python_module(base: Path, dotted: str) -> Path | None:
    """``a.b`` under ``base``: ``a/b.py`` or the package ``a/b/__init__.py``."""
    target = base.joinpath(*dotted.split(".")) if dotted else base
    for candidate in (target.with_name(target.name + ".py") if dotted else None, target / "__init__.py",
                      target.with_name(target.name + ".pyi") if dotted else None):
        if candidate is not None and _is_file(candidate):
            return candidate
    return None


def _python_bases(path: Path, root: Path) -> list[Path]:
    """Where absolute imports are looked up: the script's folder, the top of its package,
    the root and a ``src/`` layout."""
    top = path.parent
    while _is_file(top / "__init__.py") and top != root and top.parent != top:
        top = top.parent
    bases: list[Path] = []
    for base in (path.parent, top, root, root / "src"):
        if base not in bases and _is_dir(base):
            bases.append(base)
    return bases


def _python_imports(path: Path, text: str, root: Path) -> Iterable[Path]:
    bases = _python_bases(path, root)
    module_at = functools.lru_cache(maxsize=None)(_python_module)  # a big file repeats its imports
    events: list[tuple[int, list[Path]]] = []
    for match in _PY_IMPORT.finditer(text):
        found = []
        for item in match.group(1).split(","):
            dotted = item.strip().split()[0] if item.strip() else ""
            if re.fullmatch(r"\w+(\.\w+)*", dotted):
                module = _first(module_at(base, dotted) for base in bases)
                if module is not None:
                    found.append(module)
        events.append((match.start(), found))
    for match in _PY_FROM.finditer(text):
        dots, dotted, names_text = match.group(1), match.group(2), match.group(3)
        names = [n.strip().split()[0] for n in names_text.strip("()").replace("\n", " ").split(",") if n.strip()]
        names = [n for n in names if re.fullmatch(r"\w+", n)]
        if dots:
            base = path.parent
            for _ in range(len(dots) - 1):
                base = base.parent
            search = [base]
        else:
            search = bases
        found = []
        for base in search:
            module = module_at(base, dotted)  # with dots only: the package's __init__.py
            submodules = [m for m in (module_at(base, f"{dotted}.{n}" if dotted else n) for n in names) if m]
            if module is not None or submodules:
                # ``from pkg import mod`` names a module: the package's __init__ adds little then.
                if module is not None and (module.name != "__init__.py" or not submodules):
                    found.append(module)
                found.extend(submodules)
                break
        events.append((match.start(), found))
    events.sort(key=lambda event: event[0])
    return [p for _, paths in events for p in paths]


def _js_imports(path: Path, text: str) -> Iterable[Path]:
    specs = dict.fromkeys(match.group(2) for match in _JS_SPEC.finditer(text))  # each once, in order
    for spec in specs:
        resolved = resolve_js_specifier(path.parent, spec)
        if resolved is not None:
            yield resolved


def resolve_js_specifier(folder: Path, spec: str) -> Path | None:
    """Node/TypeScript resolution of a relative specifier: the file, the file with an
    extension, a ``.js`` written for a ``.ts`` source, then ``index.*`` in a folder."""
    base = folder / spec
    if _is_file(base):
        return base
    for ext in JS_RESOLVE_EXTENSIONS:
        candidate = base.with_name(base.name + ext)
        if _is_file(candidate):
            return candidate
    stem_swaps = {".js": (".ts", ".tsx"), ".jsx": (".tsx",), ".mjs": (".mts",), ".cjs": (".cts",)}
    for ext in stem_swaps.get(base.suffix, ()):
        candidate = base.with_suffix(ext)
        if _is_file(candidate):
            return candidate
    if _is_dir(base):
        for ext in JS_RESOLVE_EXTENSIONS:
            candidate = base / f"index{ext}"
            if _is_file(candidate):
                return candidate
    return None


def _c_includes(path: Path, text: str, root: Path) -> Iterable[Path]:
    """``#include "x.h"``: beside the file, then each folder up to the root, then the root's
    ``include/`` and ``src/``. ``<x.h>`` only in the root's own include folders (a system
    header is never a project file)."""
    quoted_dirs: list[Path] = []
    for folder in (path.parent, *path.parent.parents):
        quoted_dirs.append(folder)
        if folder == root or not _inside(folder, root):
            break
    include_dirs = [root / "include", root / "src"]
    includes = dict.fromkeys((m.group(1), m.group(2)) for m in _C_INCLUDE.finditer(text))  # each once, in order
    for quoted, angled in includes:
        dirs = [*quoted_dirs, *include_dirs] if quoted else include_dirs
        name = quoted or angled
        found = _first((d / name) if _is_file(d / name) else None for d in dirs)
        if found is not None:
            yield found


def _is_file(path: Path) -> bool:
    """``Path.is_file`` that is False, not an exception, for a name the user is still typing
    (too long for the file system, a NUL character)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _first(items: Iterable[Path | None]) -> Path | None:
    return next((item for item in items if item is not None), None)


def _resolve(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


# ---------------------------------------------------------------------- the block


@dataclass(frozen=True)
class ContextInputs:
    """What the context is chosen from. Paths may be relative or symlinked: they are resolved."""

    current: Path
    #: The open folder, if any.
    workspace: Path | None = None
    #: Open documents' texts as in the editor (unsaved edits included), most recently used
    #: first: the order they are picked in when not all fit.
    open_texts: Mapping[Path, str] = field(default_factory=dict)
    #: Recently edited / opened files, most recent first.
    recent: Sequence[Path] = ()
    #: Lines (0-based) recently seen or edited per file, most recent first.
    regions: Mapping[Path, Sequence[int]] = field(default_factory=dict)
    #: A remote engine: nothing outside the workspace root either.
    remote: bool = False
    #: The current file's text (for its imports); default: ``open_texts`` or the disk.
    current_text: str | None = None
    #: Paths (relative to the root, as the inspector lists them) the user switched off.
    disabled: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ContextEntry:
    """One ``<file_sep>`` part of the block: a whole file or a 64-line chunk of it."""

    path: str  # relative to the root, POSIX
    source: Path
    relevance: Relevance
    text: str
    #: Token cost: ``<file_sep>`` + path + ``\n`` + text.
    tokens: int
    #: 1-based first and last line of a chunk; None: the whole file.
    lines: tuple[int, int] | None = None

    @property
    def whole(self) -> bool:
        return self.lines is None

    def repo_file(self) -> RepoFile:
        return RepoFile(self.path, self.text, self.lines)

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "relevance": self.relevance.name.lower(), "whole": self.whole,
                "lines": list(self.lines) if self.lines else None, "estimated_tokens": self.tokens}


@dataclass(frozen=True)
class ContextBlock:
    """The repository block for one current file, in prompt order."""

    root: Path
    repo_name: str
    #: The current file's path relative to ``root`` (its FIM part starts with it).
    current_path: str
    entries: tuple[ContextEntry, ...]
    #: The current file's resolved imports when the block was built (to notice a change).
    imports: tuple[Path, ...] = ()
    skipped: tuple[tuple[str, SkipReason], ...] = ()

    @property
    def files(self) -> tuple[RepoFile, ...]:
        return tuple(entry.repo_file() for entry in self.entries)

    @property
    def key(self) -> tuple[object, ...]:
        """Equal for equal blocks: the completion cache keys on it (an identical block
        rebuilt after a tab switch keeps the cached completions reachable)."""
        return (self.repo_name, self.current_path, self.files)


def repo_root(current: Path, workspace: Path | None) -> Path:
    """The root the block names and paths are relative to: the open folder's git root
    (else the folder) when the file is inside it; otherwise the file's own git root, else
    its folder."""
    file = _resolve(current) or current
    if workspace is not None:
        folder = _resolve(workspace) or workspace
        if _inside(file, folder):
            top = git_root(folder)
            return top if top is not None else folder
    top = git_root(file.parent)
    return top if top is not None else file.parent


def relative_posix(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def chunk_ranges(line_count: int, regions: Sequence[int]) -> list[tuple[int, int]]:
    """0-based [start, end) line ranges of at most ``CHUNK_LINES`` around each region, most
    recent region first, without overlaps, at most ``MAX_CHUNKS_PER_FILE``. A start is a
    multiple of ``CHUNK_STEP``, with the region in the chunk's lower half when possible
    (32 lines above it): a few lines of caret movement keep the same chunk."""
    chosen: list[tuple[int, int]] = []
    for line in (regions or (0,)):
        line = max(0, min(line, max(0, line_count - 1)))
        start = max(0, (line - CHUNK_STEP) // CHUNK_STEP * CHUNK_STEP)
        end = min(line_count, start + CHUNK_LINES)
        if any(start < e and s < end for s, e in chosen):
            continue
        chosen.append((start, end))
        if len(chosen) >= MAX_CHUNKS_PER_FILE:
            break
    return chosen


class RepoContext:
    """Chooses the repository block. Stateless: ``build`` reads files and ``.gitignore``
    rules afresh, so call it when the set of relevant files changed, not per keystroke."""

    def __init__(self, count_tokens: CountTokens = estimate_tokens,
                 path_filter: Callable[[Path], PathFilter] = WorkspaceFilter) -> None:
        self.count_tokens = count_tokens
        self._filter_factory = path_filter

    def imports_of(self, inputs: ContextInputs) -> tuple[Path, ...]:
        """The current file's resolved imports (cheap: a scan and a few ``stat``s)."""
        current = _resolve(inputs.current) or inputs.current
        root = repo_root(current, inputs.workspace)
        text = inputs.current_text
        if text is None:
            text = _normalised(inputs.open_texts).get(current)
        if text is None:
            text = _read(current)[0] or ""
        return resolve_imports(current, text, root)

    def build(self, inputs: ContextInputs, budget_tokens: int) -> ContextBlock:
        """The block for ``inputs`` within ``budget_tokens`` (everything from
        ``<repo_name>`` up to, not including, the current file's ``<file_sep>``)."""
        current = _resolve(inputs.current) or inputs.current
        root = repo_root(current, inputs.workspace)
        workspace = _resolve(inputs.workspace) if inputs.workspace is not None else None
        name = root.name or str(root)
        open_texts = _normalised(inputs.open_texts)
        regions = {(_resolve(p) or p): list(lines) for p, lines in inputs.regions.items()}
        imports = self.imports_of(ContextInputs(current, inputs.workspace, inputs.open_texts,
                                                current_text=inputs.current_text))

        candidates: list[tuple[Path, Relevance]] = []
        seen = {current}
        groups: list[tuple[Iterable[Path], Relevance]] = [
            (imports, Relevance.IMPORT), (open_texts, Relevance.OPEN),
            ((_resolve(p) or p for p in inputs.recent), Relevance.RECENT),
        ]
        for paths, relevance in groups:
            for path in paths:
                if path not in seen:
                    seen.add(path)
                    candidates.append((path, relevance))
        candidates = candidates[:MAX_CANDIDATES]

        policy = self._filter_factory(root)
        remaining = budget_tokens - 1 - self.count_tokens(name)  # <repo_name> + the name
        chosen: list[ContextEntry] = []
        skipped: list[tuple[str, SkipReason]] = []
        for path, relevance in candidates:
            rel = relative_posix(path, root)
            reason = SkipReason.SWITCHED_OFF if rel in inputs.disabled else policy.excluded(path)
            if reason is None and inputs.remote and (workspace is None or not _inside(path, workspace)):
                reason = SkipReason.OUTSIDE
            text: str | None = open_texts.get(path)
            if reason is None and text is None:
                text, reason = _read(path)
            if reason is not None or text is None:
                skipped.append((rel, reason or SkipReason.UNREADABLE))
                continue
            entries = self._fit(path, rel, relevance, text, regions.get(path, ()), remaining)
            if not entries:
                skipped.append((rel, SkipReason.NO_ROOM))
                continue
            chosen.extend(entries)
            remaining -= sum(e.tokens for e in entries)
        chosen.sort(key=lambda e: (-e.relevance, e.path, e.lines or (0, 0)))
        if skipped:
            log.debug("context for %s leaves out %s", relative_posix(current, root), skipped)
        return ContextBlock(root, name, relative_posix(current, root), tuple(chosen), imports, tuple(skipped))

    def _fit(self, path: Path, rel: str, relevance: Relevance, text: str, regions: Sequence[int],
             remaining: int) -> list[ContextEntry]:
        """The whole file when it fits, else chunks around its recent places."""
        if len(text.encode("utf-8")) // 16 < remaining:  # surely too big otherwise: skip the count
            cost = 1 + self.count_tokens(f"{rel}\n{text}")
            if cost <= remaining:
                return [ContextEntry(rel, path, relevance, text, cost)]
        lines = text.splitlines(keepends=True)
        entries: list[ContextEntry] = []
        for start, end in chunk_ranges(len(lines), regions):
            chunk = "".join(lines[start:end])
            cost = 1 + self.count_tokens(f"{rel}\n{chunk}")
            if cost <= remaining:
                entries.append(ContextEntry(rel, path, relevance, chunk, cost, (start + 1, end)))
                remaining -= cost
        return entries


def _normalised(texts: Mapping[Path, str]) -> dict[Path, str]:
    return {(_resolve(path) or path): text for path, text in texts.items()}


def _read(path: Path) -> tuple[str | None, SkipReason | None]:
    """A file's text from disk, or why not (binary, not UTF-8, too large, gone)."""
    try:
        if os.path.getsize(path) > MAX_READ_BYTES:
            return None, SkipReason.TOO_BIG
        data = path.read_bytes()
    except (OSError, ValueError):
        return None, SkipReason.UNREADABLE
    if b"\0" in data:
        return None, SkipReason.UNREADABLE
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, SkipReason.UNREADABLE
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n"), None
