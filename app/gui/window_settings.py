"""Settings reaching the window: the completion session, every tab's editor, menus and theme.

One place applies a settings object to everything that shows it, so a change from the
preferences dialog, a menu toggle and a start all end in the same state.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QApplication, QWidget

from app.gui.actions import WindowActions
from app.gui.completion_bridge import CompletionBridge
from app.gui.editor import CodeEditor
from app.gui.model_control import ModelControl
from app.gui.preferences import PreferencesDialog
from app.gui.settings import Settings, save_settings
from app.gui.tabs import DocumentTabs
from app.gui.theme import DARK, LIGHT, apply_palette

MAX_RECENT = 10


class WindowSettings:
    """Applies the window's settings object (shared with the session and the model control)."""

    def __init__(
        self, settings: Settings, completion: CompletionBridge, tabs: DocumentTabs, menus: WindowActions,
        models: ModelControl, open_recent: Callable[..., object],
    ) -> None:
        self.settings = settings
        self.completion = completion
        self.tabs = tabs
        self.menus = menus
        self.models = models
        self._open_recent = open_recent
        tabs.setup_editor = self.setup_editor
        menus.act_auto.toggled.connect(lambda on: self.set_option("auto_complete", on))
        menus.act_single.toggled.connect(lambda on: self.set_option("single_line", on))
        menus.act_repo.toggled.connect(lambda on: self.set_option("use_repo_context", on))
        menus.act_dark.toggled.connect(self.set_dark_theme)
        menus.layout_box.currentIndexChanged.connect(
            lambda _i: self.set_option("layout", menus.layout_box.currentData())
        )

    def setup_editor(self, editor: CodeEditor) -> None:
        """Font and indentation, for every tab's editor (new ones too)."""
        editor.set_font_size(self.settings.font_size)
        editor.set_indentation(self.settings.indent_with_spaces, self.settings.indent_width)

    def apply(self) -> None:
        s, a = self.settings, self.menus
        self.completion.configure(s)
        for tab in self.tabs.all():
            self.setup_editor(tab.editor)
        for action, on in ((a.act_auto, s.auto_complete), (a.act_single, s.single_line),
                           (a.act_repo, s.use_repo_context), (a.act_dark, s.dark_theme)):
            action.setChecked(on)
        a.layout_box.setCurrentIndex(max(0, a.layout_box.findData(s.layout)))
        self.set_dark_theme(s.dark_theme)
        self.rebuild_recent()

    def rebuild_recent(self) -> None:
        self.menus.rebuild_recent(self.settings.recent_files, self._open_recent)

    def open_preferences(self, parent: QWidget) -> None:
        dialog = PreferencesDialog(self.settings, parent)
        if dialog.exec() == PreferencesDialog.DialogCode.Accepted:
            self.update(dialog.result_settings())

    def update(self, new: Settings) -> None:
        """Apply changed settings now; a new context size, thread count or reuse mode reloads the model."""
        s = self.settings
        reload_needed = (new.n_ctx, new.threads, new.cache_reuse) != (s.n_ctx, s.threads, s.cache_reuse)
        for field_name, value in vars(new).items():
            setattr(s, field_name, value)
        self.apply()
        save_settings(s)
        if reload_needed and self.models.model_info is not None:
            self.models.load_model(str(self.models.model_info.path))

    def set_dark_theme(self, dark: bool) -> None:
        self.settings.dark_theme = dark
        theme = DARK if dark else LIGHT
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_palette(app, theme)
        self.tabs.set_theme(theme)

    def set_option(self, name: str, value: object) -> None:
        setattr(self.settings, name, value)
        self.completion.configure(self.settings)

    def remember_recent(self, path: object) -> None:
        """A file was opened or saved: first in File → Open Recent."""
        recent = [str(path)] + [p for p in self.settings.recent_files if p != str(path)]
        self.settings.recent_files = recent[:MAX_RECENT]
        self.rebuild_recent()
