"""The playground window: wiring between tabs, files, models, completion, status and inspector.

Each part lives in its own module and the window only connects them: tabs and per-tab
state (``app.gui.tabs``), opening and saving (``file_flows``), crash recovery per tab
(``tab_recovery``), the saved session (``session_flow``), models (``model_control``),
menus (``actions``), the first-start page (``empty_state``) and the folder tree, Quick
Open, Find and Go to line (``workspace_panels``). ``editor``, ``current_path``, ``save()``…
are the tab in front, for scripts, benchmarks and tests (``front_tab``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, QTimer, QUrl
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QDockWidget, QMainWindow

from app import APP_NAME
from app.core.engine import CompletionRequest, CompletionResult
from app.core.model_info import ModelInfo
from app.core.recovery import RecoveryCandidate, RecoveryStore
from app.core.session import RequestOutcome
from app.core.textfile import atomic_write_bytes
from app.core.workspace.session_state import SESSION_FILE_NAME
from app.gui.actions import WindowActions
from app.gui.completion_bridge import CompletionBridge
from app.gui.empty_state import CentralStack, EmptyState
from app.gui.file_flows import FileFlows
from app.gui.front_tab import FrontTab
from app.gui.inspector import PromptInspector
from app.gui.model_control import ModelControl
from app.gui.recovery_dialog import app_data_dir, default_recovery_store
from app.gui.session_flow import SessionKeeper
from app.gui.settings import Settings, save_settings
from app.gui.statusbar import StatusPanel
from app.gui.tab_recovery import TabRecovery
from app.gui.tabs import DocumentTab, DocumentTabs
from app.gui.worker import EngineClient
from app.gui.window_settings import WindowSettings
from app.gui.workspace_panels import WorkspacePanels

log = logging.getLogger("starpad.window")

#: Read when a window is built (the recovery subprocess test shortens it).
RECOVERY_INTERVAL_MS = 5000


def atomic_write(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` atomically (Starpad's own files; the user's go through ``save_text_file``)."""
    atomic_write_bytes(Path(path), text.encode("utf-8"))


class MainWindow(QMainWindow, FrontTab):
    def __init__(self, settings: Settings, client: EngineClient | None = None, interactive: bool = True,
                 recovery: RecoveryStore | None = None, recovery_interval_ms: int | None = None,
                 session_file: Path | None = None) -> None:
        super().__init__()
        self.settings = settings
        #: False for headless runs (self-test): no modal dialogs, and the user's session is left alone.
        self.interactive = interactive
        self.client = client or EngineClient(self)
        self._closing = False
        self._last_result: tuple[CompletionResult, dict[int, str]] | None = None
        self.status = StatusPanel()
        self.setStatusBar(self.status)
        self.inspector = PromptInspector()
        self.inspector_dock = QDockWidget("Prompt inspector", self)
        self.inspector_dock.setObjectName("inspector")
        self.inspector_dock.setWidget(self.inspector)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.inspector_dock)
        self.inspector_dock.setVisible(settings.show_inspector)
        #: Completion policy lives in the Qt-free session; the bridge connects it to the tabs' editors.
        self.completion = CompletionBridge(self.client, self.status, settings,
                                           recent_files=lambda: self.settings.recent_files, parent=self)
        self.tabs = DocumentTabs(self.completion)
        self.empty_state = EmptyState()
        self.panels = WorkspacePanels(self, self.tabs, self.open_file, self.set_folder)
        self.stack = CentralStack(self.empty_state, self.panels.editor_area)
        self.setCentralWidget(self.stack)
        self.files = FileFlows(self, self.tabs, self.status, interactive)
        self.models = ModelControl(self, self.client, self.completion.session, self.status, settings, interactive,
                                   show_editor=self.stack.show_workspace,
                                   current_editor=lambda: self.editor)
        #: Unsaved text goes to this instance's own recovery session (see app/core/recovery.py).
        self.recovery = recovery if recovery is not None else default_recovery_store()
        interval = RECOVERY_INTERVAL_MS if recovery_interval_ms is None else recovery_interval_ms
        self.tab_recovery = TabRecovery(self.recovery, self.tabs, self.status, interval, self)
        self.session_keeper = SessionKeeper(session_file or app_data_dir() / SESSION_FILE_NAME, self.tabs, self.files,
                                     self.status, self)
        self.menus = WindowActions(self, self.inspector_dock, self.panels.folder_dock)
        self.prefs = WindowSettings(settings, self.completion, self.tabs, self.menus, self.models, self.open_file)
        self._connect()
        self.apply_settings()
        self.tabs.new_untitled()
        self.setAcceptDrops(True)
        self.resize(1180, 760)
        self.status.set_state("no model")

    def _connect(self) -> None:
        a, files, models, tabs, panels = self.menus, self.files, self.models, self.tabs, self.panels
        for action, slot in (
            (a.act_new, self.new_file), (a.act_open, files.open_dialog), (a.act_save, self.save),
            (a.act_save_as, self.save_as), (a.act_reopen_encoding, self.reopen_with_encoding),
            (a.act_close_tab, self.close_tab), (a.act_reopen_tab, files.reopen_closed),
            (a.act_next_tab, lambda: tabs.cycle(1)), (a.act_prev_tab, lambda: tabs.cycle(-1)),
            (a.act_quit, self.close), (a.act_models, models.open_model_manager),
            (a.act_open_model, models.open_model_dialog), (a.act_compare, models.open_comparison),
            (a.act_complete, self.request_completion), (a.act_preferences, lambda: self.prefs.open_preferences(self)),
            (a.act_open_folder, panels.choose_folder), (a.act_close_folder, lambda: self.set_folder(None)),
            (a.act_quick_open, panels.quick_open_popup), (a.act_find, panels.find_bar.show_find),
            (a.act_replace, panels.find_bar.show_replace), (a.act_find_next, panels.find_bar.find_next),
            (a.act_find_prev, panels.find_bar.find_previous), (a.act_goto_line, panels.goto_line.popup),
        ):
            action.triggered.connect(slot)
        a.language_box.currentIndexChanged.connect(lambda _i: tabs.current.set_language(a.language_box.currentData()))
        self.empty_state.open_button.clicked.connect(models.open_model_dialog)
        self.empty_state.models_button.clicked.connect(models.open_model_manager)
        self.empty_state.continue_button.clicked.connect(self.stack.show_workspace)
        tabs.current_tab_changed.connect(self._on_current_tab)
        tabs.tab_changed.connect(lambda tab: self._update_title() if tab is tabs.current else None)
        tabs.close_requested.connect(files.close_tab)
        tabs.completion_requested.connect(self.request_completion)
        files.file_used.connect(self._on_file_used)
        files.closing.connect(self.tab_recovery.drop)
        models.loaded.connect(a.show_model)
        # The folder names the repository; the tree and Quick Open list it.
        for follower in (self.completion.session.set_workspace, panels.show_folder, a.show_folder):
            self.session_keeper.folder_changed.connect(follower)
        files.saved.connect(lambda _tab: self.completion.session.files_changed())  # the repository block follows
        files.saved.connect(panels.file_saved)
        self.completion.result_ready.connect(self._on_completion_result)

    @property
    def model_info(self) -> ModelInfo | None:
        return self.models.model_info

    def _on_current_tab(self, tab: DocumentTab) -> None:
        self.menus.show_language(tab.language)
        self.status.set_file_format(tab.file_format.label if tab.path else "", tab.file_format.note or "")
        self._update_title()

    def _update_title(self) -> None:
        tab = self.tabs.current
        self.setWindowTitle(f"{tab.title}{' •' if tab.modified else ''} — {APP_NAME}")

    # --------------------------------------------------------------- settings
    def apply_settings(self) -> None:
        self.prefs.apply()

    def update_settings(self, new: Settings) -> None:
        self.prefs.update(new)

    def set_dark_theme(self, dark: bool) -> None:
        self.prefs.set_dark_theme(dark)

    # ------------------------------------------------------ models, completion
    def load_model(self, path: str) -> None:
        self.models.load_model(path)

    def open_model_manager(self) -> None:
        self.models.open_model_manager()

    def build_request(self) -> CompletionRequest:
        """The request a completion at the caret would send now (the session builds it)."""
        self.completion.sync()
        return self.completion.session.build_request()

    def request_completion(self) -> None:
        """Ctrl+Space: ask now."""
        if self.editor.loading:
            return  # asked again when the file is complete
        if self.completion.request_now() is RequestOutcome.NO_MODEL:
            self.status.showMessage("Open a model first (Model → Open GGUF model…)", 4000)

    def _on_completion_result(self, result: CompletionResult, token_texts: dict[int, str]) -> None:
        if self.inspector_dock.isVisible():
            self.inspector.show_prompt(result.prompt, result.stats, token_texts)
        self._last_result = (result, token_texts)

    # ------------------------------------------------------------------ files
    def new_file(self) -> None:
        self.tabs.new_untitled()
        self.stack.show_workspace()

    def open_file(self, path: Path, encoding: str | None = None) -> bool:
        """Open ``path`` in a tab (an open one comes to the front); False with a message if refused."""
        return self.files.open_file(Path(path), encoding) is not None

    def close_tab(self, tab: DocumentTab | bool | None = None) -> bool:
        """Ctrl+W: close the tab in front (or ``tab``), asking first if it has unsaved changes."""
        return self.files.close_tab(tab if isinstance(tab, DocumentTab) else self.tab)

    def _on_file_used(self, path: Path) -> None:
        self.stack.show_workspace()
        self.prefs.remember_recent(path)
        self._update_title()

    def write_recovery(self) -> bool:
        return self.tab_recovery.write_all()

    def adopt_recovery(self, candidate: RecoveryCandidate) -> bool:
        """Take text a dead instance left into a tab (see ``TabRecovery.adopt``)."""
        tab = self.tab_recovery.adopt(candidate)
        self.stack.show_workspace()
        return tab is not None

    def set_folder(self, folder: Path | None) -> None:
        """The folder view shows ``folder`` (None: none): the repository, and part of the session."""
        self.session_keeper.set_folder(folder)

    def restore_session(self) -> list[str]:
        return self.session_keeper.restore()

    # ------------------------------------------------------- window events
    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow() and not self._closing:
            # Coming back to the window is when another program's change becomes relevant.
            # Checked after the event, since it may open a dialog.
            QTimer.singleShot(0, self, self.check_disk_changes)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        for url in event.mimeData().urls():
            path = Path(QUrl(url).toLocalFile())
            if path.suffix.lower() == ".gguf":
                self.load_model(str(path))
                break
            if path.is_dir():
                self.set_folder(path)  # a folder dropped: the folder view shows it
            else:
                self.open_file(path)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if not self.files.confirm_close(self.tabs.all()):  # one question listing every modified tab
            event.ignore()
            return
        self._closing = True
        if self.interactive:
            self.session_keeper.save()
        self.models.close()
        self.completion.shutdown()
        self.settings.show_inspector = self.inspector_dock.isVisible()
        save_settings(self.settings)
        self.client.shutdown()
        self.tabs.shutdown()
        self.tab_recovery.close()
        event.accept()
