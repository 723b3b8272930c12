"""The main window's menus, actions and toolbar.

Built here and connected by the window, so the window stays wiring and the list of what
the user can do reads in one place.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QDockWidget, QLabel, QMainWindow, QToolBar

from app.core.model_info import ModelInfo
from app.gui.highlighter import all_languages


class WindowActions:
    """Every menu entry and toolbar control of the main window (not yet connected)."""

    def __init__(self, window: QMainWindow, inspector_dock: QDockWidget, folder_dock: QDockWidget) -> None:
        menu = window.menuBar()
        file_menu = menu.addMenu("&File")
        self.act_new = file_menu.addAction("&New")
        self.act_new.setShortcut(QKeySequence.StandardKey.New)
        self.act_open = file_menu.addAction("&Open…")
        self.act_open.setShortcut(QKeySequence.StandardKey.Open)
        # Ctrl+K Ctrl+O (other editors' chord) would make every Ctrl+K wait for a second key.
        self.act_open_folder = _shortcut(file_menu.addAction("Open &Folder…"), "Ctrl+Shift+O")
        self.act_close_folder = file_menu.addAction("Close Fol&der")
        self.act_close_folder.setEnabled(False)
        self.act_quick_open = _shortcut(file_menu.addAction("&Quick Open…"), "Ctrl+P")
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.act_reopen_encoding = file_menu.addAction("Reopen with &Encoding…")
        self.act_save = file_menu.addAction("&Save")
        self.act_save.setShortcut(QKeySequence.StandardKey.Save)
        self.act_save_as = file_menu.addAction("Save &As…")
        self.act_save_as.setShortcut(QKeySequence.StandardKey.SaveAs)
        file_menu.addSeparator()
        self.act_close_tab = file_menu.addAction("&Close Tab")
        self.act_close_tab.setShortcuts([QKeySequence("Ctrl+W"), QKeySequence("Ctrl+F4")])
        self.act_reopen_tab = file_menu.addAction("Reopen Closed &Tab")
        self.act_reopen_tab.setShortcut(QKeySequence("Ctrl+Shift+T"))
        file_menu.addSeparator()
        self.act_quit = file_menu.addAction("&Quit")
        self.act_quit.setShortcut(QKeySequence.StandardKey.Quit)

        edit_menu = menu.addMenu("&Edit")
        self.act_find = _shortcut(edit_menu.addAction("&Find…"), "Ctrl+F")
        self.act_replace = _shortcut(edit_menu.addAction("&Replace…"), "Ctrl+H")
        self.act_find_next = _shortcut(edit_menu.addAction("Find &Next"), "F3")
        self.act_find_prev = _shortcut(edit_menu.addAction("Find &Previous"), "Shift+F3")
        edit_menu.addSeparator()
        self.act_goto_line = _shortcut(edit_menu.addAction("&Go to Line…"), "Ctrl+G")

        model_menu = menu.addMenu("&Model")
        self.act_models = model_menu.addAction("&Models…")
        self.act_models.setShortcut(QKeySequence("Ctrl+M"))
        self.act_open_model = model_menu.addAction("Open &GGUF model…")
        self.act_compare = model_menu.addAction("&Compare quants…")
        model_menu.addSeparator()
        self.act_complete = model_menu.addAction("Complete &now")
        self.act_complete.setShortcut(QKeySequence("Ctrl+Space"))
        self.act_auto = _checkable(model_menu.addAction("&Automatic completion"))
        self.act_single = _checkable(model_menu.addAction("&Single-line completions"))
        self.act_repo = _checkable(model_menu.addAction("Use the &repository as context"))
        self.act_preferences = model_menu.addAction("&Preferences…")
        self.act_preferences.setShortcut(QKeySequence.StandardKey.Preferences)

        view_menu = menu.addMenu("&View")
        self.act_next_tab = view_menu.addAction("&Next Tab")
        self.act_next_tab.setShortcuts([QKeySequence("Ctrl+Tab"), QKeySequence("Ctrl+PgDown")])
        self.act_prev_tab = view_menu.addAction("&Previous Tab")
        self.act_prev_tab.setShortcuts(
            [QKeySequence("Ctrl+Shift+Tab"), QKeySequence("Ctrl+Shift+Backtab"), QKeySequence("Ctrl+PgUp")]
        )
        view_menu.addSeparator()
        self.act_dark = _checkable(view_menu.addAction("&Dark theme"))
        self.act_folder_view = folder_dock.toggleViewAction()
        self.act_folder_view.setText("&Folder tree")
        view_menu.addAction(self.act_folder_view)
        self.act_inspector = inspector_dock.toggleViewAction()
        self.act_inspector.setText("Prompt &inspector")
        view_menu.addAction(self.act_inspector)

        toolbar = QToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setMovable(False)
        window.addToolBar(toolbar)
        toolbar.addAction(self.act_models)
        toolbar.addAction(self.act_open_model)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Language "))
        self.language_box = QComboBox()
        self.language_box.setMinimumWidth(170)
        self.language_box.addItem("Auto-detect", "")
        for name, alias in all_languages():
            self.language_box.addItem(name, alias)
        toolbar.addWidget(self.language_box)
        toolbar.addWidget(QLabel("  Layout "))
        self.layout_box = QComboBox()
        self.layout_box.addItem("SPM (fast while typing)", "spm")
        self.layout_box.addItem("PSM", "psm")
        toolbar.addWidget(self.layout_box)

    def rebuild_recent(self, paths: list[str], open_path: Callable[[Path], object]) -> None:
        self.recent_menu.clear()
        for name in paths:
            self.recent_menu.addAction(name, functools.partial(open_path, Path(name)))
        self.recent_menu.setEnabled(bool(paths))

    def show_model(self, info: ModelInfo) -> None:
        """Prefix-only models have no layout to choose (the status bar says so persistently)."""
        self.layout_box.setEnabled(not info.prefix_only)
        self.layout_box.setToolTip(info.notes[0] if info.notes else "")

    def show_folder(self, folder: Path | None) -> None:
        """Close Folder only means something while one is open. (The dock's title names the
        folder, and a dock renames its toggle action after its title: the menu keeps its words.)"""
        self.act_close_folder.setEnabled(folder is not None)
        self.act_folder_view.setText("&Folder tree")

    def show_language(self, alias: str) -> None:
        """The tab in front has this language choice ("" auto): the box says so, silently."""
        was = self.language_box.blockSignals(True)
        try:
            self.language_box.setCurrentIndex(max(0, self.language_box.findData(alias)))
        finally:
            self.language_box.blockSignals(was)


def _shortcut(action: QAction, keys: str) -> QAction:
    action.setShortcut(QKeySequence(keys))
    return action


def _checkable(action: QAction) -> QAction:
    action.setCheckable(True)
    return action
