"""The saved session: open folder, tabs, current tab, carets and scroll positions.

Written at quit, read at the next start. The file is Starpad's own JSON under the app's
data folder, written atomically, and validated field by field when read: a session file
is user-editable and outlives versions, so anything can be in it. A bad file gives an
empty session and a note, never a failed start; a tab whose file is gone is skipped and
named, the others come back.

Qt-free: the window reads and writes it; tests drive it with a temporary folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.textfile import atomic_write_bytes

log = logging.getLogger("starpad.workspace")

SESSION_FORMAT = 1
SESSION_FILE_NAME = "session.json"


class SessionFileError(ValueError):
    """A session file that cannot be used; the message says why."""


@dataclass(frozen=True)
class SavedTab:
    """One file tab: where it is, and where the user was in it."""

    path: Path
    caret: int = 0
    scroll: int = 0


@dataclass(frozen=True)
class SavedSession:
    """What comes back at the next start."""

    tabs: tuple[SavedTab, ...] = ()
    #: Index into ``tabs`` of the current tab; -1: none (e.g. an untitled tab was current).
    current: int = -1
    #: The folder open in the folder view, if any.
    folder: Path | None = None

    @property
    def empty(self) -> bool:
        return not self.tabs and self.folder is None

    def to_json(self) -> str:
        data = {
            "format": SESSION_FORMAT,
            "folder": str(self.folder) if self.folder is not None else None,
            "current": self.current,
            "tabs": [{"path": str(t.path), "caret": t.caret, "scroll": t.scroll} for t in self.tabs],
        }
        return json.dumps(data, indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> SavedSession:
        """Parse a session file; SessionFileError when it is not one at all.

        A single bad tab entry is skipped (logged), the others are kept.
        """
        try:
            data = json.loads(text)
        except ValueError:
            raise SessionFileError("not valid JSON") from None
        if not isinstance(data, dict) or data.get("format") != SESSION_FORMAT:
            raise SessionFileError("unknown session format")
        raw_tabs = data.get("tabs", [])
        if not isinstance(raw_tabs, list):
            raise SessionFileError("tabs is not a list")
        tabs: list[SavedTab] = []
        current = data.get("current", -1)
        current = current if isinstance(current, int) and not isinstance(current, bool) else -1
        new_current = -1
        for index, entry in enumerate(raw_tabs):
            tab = _tab_from(entry)
            if tab is None:
                log.warning("session: tab entry %d is unreadable; skipped", index)
                continue
            if index == current:
                new_current = len(tabs)
            tabs.append(tab)
        folder = data.get("folder")
        return cls(tuple(tabs), new_current, Path(folder) if isinstance(folder, str) and folder else None)

    def without_missing(self, exists: Callable[[Path], bool] = Path.is_file) -> tuple[SavedSession, list[Path]]:
        """This session less the tabs whose file is gone (and a folder that is gone), and those paths."""
        kept: list[SavedTab] = []
        missing: list[Path] = []
        current = -1
        for index, tab in enumerate(self.tabs):
            try:
                present = exists(tab.path)
            except OSError:
                present = False
            if not present:
                missing.append(tab.path)
                continue
            if index == self.current:
                current = len(kept)
            kept.append(tab)
        folder = self.folder
        if folder is not None and not folder.is_dir():
            missing.append(folder)
            folder = None
        return SavedSession(tuple(kept), current, folder), missing


def _non_negative(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _tab_from(entry: Any) -> SavedTab | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
        return None
    caret, scroll = _non_negative(entry.get("caret", 0)), _non_negative(entry.get("scroll", 0))
    return SavedTab(Path(entry["path"]), caret or 0, scroll or 0)


def load_session(path: Path) -> tuple[SavedSession, list[str]]:
    """The saved session and notes about what could not be read; never raises.

    No file is simply an empty session (first start, or nothing was open).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return SavedSession(), []
    except OSError as exc:
        return SavedSession(), [f"The last session could not be read ({exc.strerror or exc})."]
    try:
        return SavedSession.from_json(data.decode("utf-8")), []
    except UnicodeDecodeError:
        reason = "not valid UTF-8"
    except SessionFileError as exc:
        reason = str(exc)
    log.warning("session file %s ignored: %s", path, reason)
    return SavedSession(), [f"The last session could not be restored ({reason})."]


def save_session(path: Path, session: SavedSession) -> None:
    """Write the session atomically; OSError (or TextFileError: not a regular file) when the
    disk refuses, for the caller to report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, session.to_json().encode("utf-8"))
