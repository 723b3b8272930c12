"""The workspace around the tabs: folder tree, Quick Open, Find / Replace and Go to line.

The widgets themselves (``folder_view``, ``quick_open``, ``find_bar``, ``goto_line``) know
nothing of tabs or windows; this object places them in the window and keeps them on the
right things: the open folder (from ``SessionKeeper.folder_changed``, so a folder restored
with the session, dropped on the window or chosen in Open Folder… all end in the same
state) and the tab in front (``DocumentTabs.current_tab_changed``). A chosen file goes
through the window's ``open_file``, like every other way of opening one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow, QVBoxLayout, QWidget

from app.gui.find_bar import FindBar
from app.gui.folder_view import FolderView
from app.gui.goto_line import GotoLine
from app.gui.quick_open import QuickOpen
from app.gui.tabs import DocumentTab, DocumentTabs

log = logging.getLogger("starpad.workspace")


class WorkspacePanels(QObject):
    """Builds the workspace widgets into ``window`` and follows folder and tab changes."""

    def __init__(
        self, window: QMainWindow, tabs: DocumentTabs, open_file: Callable[[Path], object],
        set_folder: Callable[[Path | None], None],
    ) -> None:
        super().__init__(window)
        self._window = window
        self._tabs = tabs
        self._set_folder = set_folder
        # The find bar sits under the tabs, so it never covers the text it searches.
        self.editor_area = QWidget()
        layout = QVBoxLayout(self.editor_area)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(tabs, 1)
        self.find_bar = FindBar(self.editor_area)
        layout.addWidget(self.find_bar)
        self.folder_view = FolderView()
        self.folder_dock = QDockWidget("Folder", window)
        self.folder_dock.setObjectName("folder")
        self.folder_dock.setWidget(self.folder_view)
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.folder_dock)
        self.folder_dock.hide()  # shown when a folder opens
        self.quick_open = QuickOpen(window)
        self.goto_line = GotoLine(window)
        self.folder_view.file_activated.connect(open_file)
        self.quick_open.file_chosen.connect(open_file)
        tabs.current_tab_changed.connect(self.follow_tab)

    def folder(self) -> Path | None:
        return self.folder_view.folder()

    def show_folder(self, folder: Path | None) -> None:
        """The window's folder changed: the tree and Quick Open list it (None: nothing)."""
        self.folder_view.set_folder(folder)
        self.quick_open.set_folder(folder, self.folder_view.rules())
        self.folder_dock.setVisible(folder is not None)
        self.folder_dock.setWindowTitle(folder.name or str(folder) if folder is not None else "Folder")
        if folder is not None:
            self._reveal_current()

    def follow_tab(self, tab: DocumentTab) -> None:
        """Find and Go to line work on the tab in front; the tree selects its file."""
        self.find_bar.set_editor(tab.editor)
        self.goto_line.set_editor(tab.editor)
        self._reveal_current()

    def file_saved(self, tab: DocumentTab) -> None:
        """A saved ``.gitignore`` changes what the tree hides (Quick Open shares its rules and
        lists again on every popup)."""
        if tab.path is not None and tab.path.name == ".gitignore":
            self.folder_view.reload_rules()

    def choose_folder(self) -> None:
        """File → Open Folder…"""
        start = str(self.folder() or Path.home())
        chosen = QFileDialog.getExistingDirectory(self._window, "Open Folder", start)
        if chosen:
            self._set_folder(Path(chosen))

    def quick_open_popup(self) -> None:
        """Ctrl+P; without a folder the popup says so (and offers nothing)."""
        self.quick_open.popup()

    def _reveal_current(self) -> None:
        path = self._tabs.current.path if self._tabs.count() else None
        if path is not None and self.folder() is not None:
            self.folder_view.reveal(path)
