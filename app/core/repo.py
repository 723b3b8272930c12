"""Where a file's repository starts: the name StarCoder2 sees as ``<repo_name>``.

StarCoder2 was trained on repositories laid out as ``<repo_name>``name``<file_sep>``path…,
with paths relative to the repository's root. The name must therefore come from the file,
never from the process's working folder: a double-clicked app runs in the home folder or
``/``, which would tell the model every file lives in a repository called "root".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class RepoLocation:
    """A file placed in its repository: the root, its name and the file's relative path."""

    root: Path
    relative_path: str  # POSIX separators, as in the training data

    @property
    def name(self) -> str:
        return self.root.name or str(self.root)

    def relative(self, path: Path) -> str:
        """``path`` relative to the root (POSIX); its bare name when it lies outside."""
        try:
            return PurePosixPath(path.resolve().relative_to(self.root).as_posix()).as_posix()
        except ValueError:
            return path.name


def git_root(path: Path) -> Path | None:
    """The nearest folder at or above ``path`` that holds ``.git`` (a folder, or a file for worktrees)."""
    for folder in (path, *path.parents):
        if (folder / ".git").exists():
            return folder
    return None


def locate(file_path: Path) -> RepoLocation:
    """The file's git root when it has one, else the folder the file is in."""
    resolved = file_path.resolve()
    root = git_root(resolved.parent) or resolved.parent
    return RepoLocation(root, resolved.relative_to(root).as_posix())
