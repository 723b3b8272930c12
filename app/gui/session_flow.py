"""The window's saved session: what is open at quit comes back at the next start.

Open folder, file tabs in their order, the tab in front, carets and scroll positions go to
``session.json`` in the app's data folder (``app.core.workspace.session_state``). At the
next start each file is opened again quietly: a file that is gone or cannot be read any
more is skipped and named in the status bar, never a dialog and never a failed start.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal

from app.core.errors import StarpadError
from app.core.workspace.session_state import SavedSession, SavedTab, load_session, save_session
from app.gui.file_flows import FileFlows
from app.gui.statusbar import StatusPanel
from app.gui.tabs import DocumentTabs

log = logging.getLogger("starpad.workspace")


class SessionKeeper(QObject):
    """Saves and restores the window's session (see the module docstring)."""

    #: The folder shown in the folder view changed (None: none).
    folder_changed = Signal(object)

    def __init__(
        self, path: Path, tabs: DocumentTabs, files: FileFlows, status: StatusPanel, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.path = path
        self.tabs = tabs
        self.files = files
        self.status = status
        #: The folder open in the folder view, if any.
        self.folder: Path | None = None

    def set_folder(self, folder: Path | None) -> None:
        self.folder = folder
        self.folder_changed.emit(folder)

    def capture(self) -> SavedSession:
        """The session as it is now: file tabs only (untitled text lives in recovery records)."""
        front = self.tabs.current
        saved: list[SavedTab] = []
        current = -1
        for tab in self.tabs.all():
            if tab.path is None:
                continue
            if tab is front:
                current = len(saved)
            saved.append(SavedTab(tab.path, tab.caret(), tab.scroll()))
        return SavedSession(tuple(saved), current, self.folder)

    def save(self) -> bool:
        try:
            save_session(self.path, self.capture())
        except (OSError, StarpadError) as exc:
            log.warning("could not save the session: %s", exc)
            return False
        return True

    def restore(self) -> list[str]:
        """Open the last session's folder and tabs; what could not come back is said in the
        status bar (and returned)."""
        saved, problems = load_session(self.path)
        saved, missing = saved.without_missing()
        problems += [f"{path} no longer exists" for path in missing]
        if saved.folder is not None:
            self.set_folder(saved.folder)
        for entry in saved.tabs:
            tab = self.files.open_file(entry.path, quiet=True)
            if tab is None:
                problems.append(self.files.last_error)
            elif tab.editor.loading:  # a big file: the caret goes back once all of it is in
                tab.editor.loading_finished.connect(
                    functools.partial(tab.put_caret, entry.caret, entry.scroll), Qt.ConnectionType.SingleShotConnection
                )
            else:
                tab.put_caret(entry.caret, entry.scroll)
        if 0 <= saved.current < len(saved.tabs):
            front = self.tabs.find_path(saved.tabs[saved.current].path)
            if front is not None:
                self.tabs.show_tab(front)
        if problems:
            self.status.showMessage("Not restored from the last session: " + "; ".join(problems), 20000)
        return problems
