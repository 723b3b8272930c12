"""Which files of an open folder are shown, offered and allowed into a prompt.

Three questions, three answers:

- **shown** in the folder tree and **offered** by Quick Open: everything except what
  :meth:`WorkspaceRules.is_ignored` hides: VCS folders, caches and build outputs
  (``BUILTIN_DIRS``, ``BUILTIN_DIR_SUFFIXES``, ``BUILTIN_FILES``), and what ``.gitignore``
  files ignore. A folder full of generated files (``node_modules`` alone can hold
  100,000) would bury the project's own files and make every listing slow.
- **allowed as context** (:meth:`WorkspaceRules.allows_context`): shown *and* not a
  secret (:func:`is_secret`). Secrets are shown, because the user may well edit a
  ``.env`` file, but they never go into a prompt: a remote engine would receive them.

``.gitignore`` handling follows git: the root ``.gitignore``, nested ones (their patterns
are relative to their own folder and override the ones above), and ``.git/info/exclude``
(weakest). Patterns are matched by the maintained ``pathspec`` library (its
``GitIgnoreSpec`` replicates git's edge cases), never by hand. As in git, nothing inside an
ignored folder comes back, whatever a deeper ``!pattern`` says. The patterns are read
from the git root when the folder lies in a repository; a folder that has ``.gitignore``
files but no ``.git`` (a copied or unpacked project) has them honoured too, because
hiding what its authors meant to keep out is the safe side for a prompt.

Usage::

    rules = WorkspaceRules(folder)
    rules.is_ignored("build", is_dir=True)         # True
    rules.allows_context("src/app.py")             # True
    listing = list_files(folder, rules)            # FileListing: relative POSIX paths, BFS order

``WorkspaceRules`` reads each folder's ``.gitignore`` once and caches it; call
:meth:`WorkspaceRules.reload` after a ``.gitignore`` changed. It is safe to share between
the GUI thread and one listing thread (the caches only ever gain equal entries).
"""

from __future__ import annotations

import logging
import os
import stat
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath

from pathspec import GitIgnoreSpec

from app.core.repo import git_root

log = logging.getLogger("starpad.workspace")

#: Folders that are never project sources: version control, caches, environments, build outputs.
BUILTIN_DIRS = frozenset({
    ".git", ".hg", ".svn", ".bzr",
    "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", ".tox", ".nox", ".eggs",
    ".venv", "venv", "node_modules", "bower_components", ".gradle", ".next", ".nuxt", ".parcel-cache",
    "build", "dist", "target", "_build", "cmake-build-debug", "cmake-build-release",
})
#: Folder name endings of build outputs (``starpad.egg-info``).
BUILTIN_DIR_SUFFIXES = (".egg-info", ".dist-info")
#: Files that are never sources: compiled objects and desktop litter.
BUILTIN_FILE_SUFFIXES = (".pyc", ".pyo", ".o", ".obj", ".class")
BUILTIN_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})

#: A listing stops here: Quick Open and the context planner need the project's files, and a
#: folder with more is most likely a home folder or a disk (the listing says it was cut).
MAX_FILES = 20_000


class Exclusion(Enum):
    """Why a path is hidden (or ``NONE`` when it is shown)."""

    NONE = "none"
    BUILTIN = "builtin"  # a VCS folder, cache or build output
    GITIGNORE = "gitignore"  # a .gitignore (or .git/info/exclude) pattern
    INSIDE_HIDDEN = "inside_hidden"  # a folder above it is hidden


# ------------------------------------------------------------------ secrets
#: Exact file names (lower case) that hold credentials.
_SECRET_NAMES = frozenset({
    ".netrc", "_netrc", ".pypirc", ".npmrc", ".yarnrc", ".git-credentials", ".pgpass", ".htpasswd",
    ".dockercfg", "known_hosts", "authorized_keys",
})
#: Name prefixes (lower case): ``.env``, ``.env.local``, ``credentials.json``, ``secrets.yaml``.
_SECRET_PREFIXES = (".env", "credentials", "secrets.", "secret.")
#: Name suffixes (lower case): keys, certificates with keys, keystores, Terraform state.
_SECRET_SUFFIXES = (
    ".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".ppk", ".kdbx", ".tfstate", ".tfvars",
    ".gpg", ".asc", ".env",  # prod.env, local.env: dotenv files named after their environment
)
#: Words that make a JSON/YAML/INI name a credentials file (``gcp-credentials.json``,
#: ``service-account-key.json``), where the code around it is still allowed.
_SECRET_WORDS = ("credential", "service-account", "service_account")
_CONFIG_SUFFIXES = (".json", ".yaml", ".yml", ".ini", ".cfg", ".toml", ".conf")
#: Folders whose every file is private.
_SECRET_DIRS = frozenset({".ssh", ".gnupg", ".aws", ".docker"})


def is_secret(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like it holds secrets, judged by its name and folders only.

    Matches ``.env*``, ``*.pem``, ``*.key``, SSH keys (``id_*`` with no extension, or
    ``.pub``: ``id_rsa``, ``id_ed25519.pub``, but not ``id_map.py``), credentials files
    (``credentials*``, ``.netrc``, ``.pypirc``, ``*.p12``, ``*.pfx``, ``secrets.*``…) and
    anything under ``.ssh``, ``.gnupg`` or ``.aws``. The name, not the content, decides:
    reading a file to find out would already be too late for a file that must never leave
    the machine, and a false positive only keeps one file out of a prompt. Case-insensitive,
    because the same names are secrets on case-insensitive file systems too.
    """
    parts = PurePosixPath(os.fspath(path).replace("\\", "/")).parts
    if not parts:
        return False
    name = parts[-1].lower()
    if any(part.lower() in _SECRET_DIRS for part in parts[:-1]):
        return True
    if name in _SECRET_NAMES or name.startswith(_SECRET_PREFIXES) or name.endswith(_SECRET_SUFFIXES):
        return True
    if name.endswith(_CONFIG_SUFFIXES) and any(word in name for word in _SECRET_WORDS):
        return True
    # SSH keys: id_rsa, id_ecdsa_sk, id_ed25519, id_rsa.pub, id_rsa-cert.pub; a module id_map.py is code.
    return name.startswith("id_") and ("." not in name or name.endswith(".pub"))


def _builtin_dir(name: str) -> bool:
    return name in BUILTIN_DIRS or name.endswith(BUILTIN_DIR_SUFFIXES)


def _builtin_file(name: str) -> bool:
    return name in BUILTIN_FILES or name.endswith(BUILTIN_FILE_SUFFIXES)


# ------------------------------------------------------------------ rules
@dataclass(frozen=True)
class _IgnoreFile:
    """One ``.gitignore`` (or ``info/exclude``): its patterns and the folder they are relative to."""

    base: str  # POSIX path of its folder relative to the pattern root; "" for the root itself
    spec: GitIgnoreSpec


class WorkspaceRules:
    """The show / offer / context rules of one open folder (see the module docstring).

    Paths given to the methods are relative to ``folder``, POSIX or native separators.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        repo = git_root(self.folder)
        #: Where .gitignore patterns are anchored: the git root, or the folder without one.
        self.pattern_root = repo if repo is not None else self.folder
        self.in_git_repo = repo is not None
        prefix = self.folder.relative_to(self.pattern_root).as_posix()
        self._prefix = "" if prefix == "." else prefix
        self._ignore_files: dict[str, _IgnoreFile | None] = {}
        self._dir_cache: dict[str, Exclusion] = {}
        self._exclude: _IgnoreFile | None = None
        self.reload()
        if self._prefix and self._opened_inside_ignored():
            # The user opened an ignored folder itself (a build output, a vendored copy): by git's
            # rules everything in it is ignored, so the tree would be empty. Its own .gitignore
            # files still apply; the repository's do not.
            log.info("%s is ignored by its repository; using only its own .gitignore files", self.folder)
            self.pattern_root, self._prefix = self.folder, ""
            self.reload()

    def reload(self) -> None:
        """Forget every cached ``.gitignore`` and decision (after one of them changed)."""
        self._ignore_files = {}
        self._dir_cache = {}
        self._exclude = None
        git_dir = self.pattern_root / ".git"
        if self.in_git_repo and git_dir.is_dir():  # a worktree's .git is a file: no info/exclude of its own
            self._exclude = _load_ignore_file(git_dir / "info" / "exclude", "")

    # -------------------------------------------------------------- queries
    def classify(self, relative: str | os.PathLike[str], is_dir: bool) -> Exclusion:
        """Why ``relative`` (a path inside the folder) is hidden, or ``Exclusion.NONE``."""
        rel = _normalise(relative)
        if not rel:
            return Exclusion.NONE
        parent, _, _ = rel.rpartition("/")
        if parent and self._classify_dir(parent) is not Exclusion.NONE:
            return Exclusion.INSIDE_HIDDEN
        return self._classify_entry(rel, is_dir)

    def is_ignored(self, relative: str | os.PathLike[str], is_dir: bool = False) -> bool:
        """Whether the tree and Quick Open hide ``relative`` (it or a folder above it is ignored)."""
        return self.classify(relative, is_dir) is not Exclusion.NONE

    def allows_context(self, relative: str | os.PathLike[str]) -> bool:
        """Whether the file ``relative`` may go into a prompt: shown, and not a secret."""
        rel = _normalise(relative)
        return bool(rel) and not is_secret(rel) and not self.is_ignored(rel, is_dir=False)

    def relative(self, path: Path) -> str | None:
        """``path`` relative to the folder (POSIX), or None when it lies outside."""
        try:
            rel = path.resolve().relative_to(self.folder).as_posix()
        except (ValueError, OSError):
            return None
        return "" if rel == "." else rel

    # ------------------------------------------------------------ internals
    def _classify_dir(self, rel: str) -> Exclusion:
        """A folder's verdict, its parents first; cached, since every file below asks again."""
        cached = self._dir_cache.get(rel)
        if cached is not None:
            return cached
        parent, _, _ = rel.rpartition("/")
        if parent and self._classify_dir(parent) is not Exclusion.NONE:
            verdict = Exclusion.INSIDE_HIDDEN
        else:
            verdict = self._classify_entry(rel, is_dir=True)
        self._dir_cache[rel] = verdict
        return verdict

    def _classify_entry(self, rel: str, is_dir: bool) -> Exclusion:
        """The verdict for ``rel`` itself, assuming the folders above it are shown."""
        name = rel.rpartition("/")[2]
        if _builtin_dir(name) if is_dir else _builtin_file(name):
            return Exclusion.BUILTIN
        if self._gitignored(rel, is_dir):
            return Exclusion.GITIGNORE
        return Exclusion.NONE

    def _opened_inside_ignored(self) -> bool:
        """Whether the folder, or a folder between it and the git root, is ignored by the repository."""
        parts = self._prefix.split("/")
        return any(self._gitignored_full("/".join(parts[: i + 1]), is_dir=True) for i in range(len(parts)))

    def _gitignored(self, rel: str, is_dir: bool) -> bool:
        return self._gitignored_full(f"{self._prefix}/{rel}" if self._prefix else rel, is_dir)

    def _gitignored_full(self, full: str, is_dir: bool) -> bool:
        """Git's rule: the deepest ignore file with a matching pattern decides; info/exclude is weakest.

        ``full`` is relative to the pattern root.
        """
        folders = full.split("/")[:-1]
        candidates = [self._exclude, self._ignore_file("")]
        candidates += [self._ignore_file("/".join(folders[: i + 1])) for i in range(len(folders))]
        verdict: bool | None = None
        for ignore_file in candidates:
            if ignore_file is None:
                continue
            inner = full[len(ignore_file.base) + 1:] if ignore_file.base else full
            result = ignore_file.spec.check_file(inner + "/" if is_dir else inner)
            if result.include is not None:
                verdict = result.include
        return bool(verdict)

    def _ignore_file(self, base: str) -> _IgnoreFile | None:
        """The ``.gitignore`` of the folder ``base`` (relative to the pattern root), read once."""
        if base in self._ignore_files:
            return self._ignore_files[base]
        folder = self.pattern_root / base if base else self.pattern_root
        loaded = _load_ignore_file(folder / ".gitignore", base)
        self._ignore_files[base] = loaded
        return loaded


def _normalise(relative: str | os.PathLike[str]) -> str:
    rel = os.fspath(relative).replace("\\", "/").strip("/")
    return "" if rel == "." else rel


def _load_ignore_file(path: Path, base: str) -> _IgnoreFile | None:
    """Compile an ignore file; None when there is none, it is empty or it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:  # unreadable (permissions, a folder named .gitignore): hide nothing by it
        log.warning("cannot read %s: %s", path, exc)
        return None
    lines = data.decode("utf-8", errors="replace").splitlines()
    try:
        spec = GitIgnoreSpec.from_lines(lines)
    except (ValueError, TypeError) as exc:  # pathspec rejects a malformed pattern
        log.warning("ignoring %s: %s", path, exc)
        return None
    return _IgnoreFile(base, spec) if len(spec) else None


# ------------------------------------------------------------------ listing
@dataclass(frozen=True)
class FileListing:
    """The files of a folder that are shown, as relative POSIX paths, shallow folders first."""

    folder: Path
    paths: list[str]
    #: More files were there than the limit allowed; ``paths`` holds the first ones.
    truncated: bool = False
    #: The walk was stopped by its ``cancelled`` callback: ``paths`` is incomplete.
    cancelled: bool = False


def list_files(
    folder: Path,
    rules: WorkspaceRules | None = None,
    *,
    limit: int = MAX_FILES,
    cancelled: Callable[[], bool] | None = None,
) -> FileListing:
    """Every shown file under ``folder`` (relative POSIX paths), breadth-first, names sorted.

    Ignored folders are pruned, not walked and filtered afterwards: ``node_modules`` costs
    one ``stat``. Breadth-first order means a cut at ``limit`` keeps the project's
    top-level files rather than the depths of one folder. Symbolic links to folders are
    not walked: one inside the folder only repeats files listed under their real path (or
    loops back to a folder above it), and one pointing outside would leave the project the
    user opened. A link to a file is listed when its target lies inside the folder. Folders
    are also remembered by device and inode, so even a bind-mount loop ends. Unreadable
    folders are skipped. ``cancelled`` is polled once per folder.
    """
    rules = rules if rules is not None else WorkspaceRules(folder)
    root = rules.folder
    paths: list[str] = []
    try:
        root_stat = root.stat()
    except OSError as exc:
        log.warning("cannot list %s: %s", root, exc)
        return FileListing(root, paths)
    seen = {(root_stat.st_dev, root_stat.st_ino)}
    queue: deque[str] = deque([""])
    while queue:
        if cancelled is not None and cancelled():
            return FileListing(root, paths, cancelled=True)
        rel_dir = queue.popleft()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as iterator:
                entries = sorted(iterator, key=lambda e: e.name)
        except OSError as exc:
            log.debug("skipping unreadable folder %s: %s", rel_dir, exc)
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            kind = _entry_kind(entry, root, seen)
            if kind is _Kind.DIR:
                if rules._classify_dir(rel) is Exclusion.NONE:  # cached: its files ask again
                    queue.append(rel)
            elif kind is _Kind.FILE and rules._classify_entry(rel, is_dir=False) is Exclusion.NONE:
                if len(paths) >= limit:
                    return FileListing(root, paths, truncated=True)
                paths.append(rel)
    return FileListing(root, paths)


class _Kind(Enum):
    DIR = "dir"  # walk it
    FILE = "file"  # list it
    SKIP = "skip"


def _entry_kind(entry: os.DirEntry[str], root: Path, seen: set[tuple[int, int]]) -> _Kind:
    """What the walk does with one directory entry (see ``list_files`` on links)."""
    try:
        if entry.is_symlink():
            target = Path(entry.path).resolve(strict=True)  # raises on a loop or a dangling link
            regular = stat.S_ISREG(target.stat().st_mode)
            return _Kind.FILE if regular and target.is_relative_to(root) else _Kind.SKIP
        if entry.is_dir(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            key = (st.st_dev, st.st_ino)
            if st.st_ino and key in seen:  # (no inode numbers from some file systems: no check)
                return _Kind.SKIP
            seen.add(key)
            return _Kind.DIR
        return _Kind.FILE if entry.is_file(follow_symlinks=False) else _Kind.SKIP
    except (OSError, RuntimeError):  # dangling link, link loop, vanished entry
        return _Kind.SKIP
