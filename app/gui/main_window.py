"""The playground window: editor, completion flow, files, status and inspector."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from pygments.lexer import Lexer
from PySide6.QtCore import QEvent, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from typing import TYPE_CHECKING

from app import APP_NAME
from app.core.engine import CompletionRequest, CompletionResult, EngineConfig
from app.core.errors import (
    FileChangedOnDiskError,
    ReadOnlyFileError,
    StarpadError,
    TextFileError,
    UncertainEncodingError,
    UnencodableTextError,
)
from app.core.memory_fit import offload_for_model
from app.core.model_info import ModelInfo, model_info
from app.core.offload import OffloadPlan
from app.core.speed import SpeedTarget
from app.core.reuse_plan import ReuseMode
from app.core.recovery import DocumentSnapshot, RecoveryCandidate, RecoveryStore, Resolution, new_document_id
from app.core.session import RequestOutcome
from app.core.textfile import (
    DiskState,
    Fingerprint,
    TextFormat,
    atomic_write_bytes,
    check_disk,
    encoding_choices,
    encoding_display_name,
    read_text_file,
    save_text_file,
    saved_format,
)
from app.gui.completion_bridge import CompletionBridge
from app.gui.editor import CodeEditor
from app.gui.highlighter import LexerResolver, PygmentsHighlighter, all_languages
from app.gui.inspector import PromptInspector
from app.gui.preferences import PreferencesDialog
from app.gui.recovery_dialog import default_recovery_store
from app.gui.settings import Settings, save_settings
from app.gui.statusbar import StatusPanel
from app.gui.theme import DARK, LIGHT, apply_palette
from app.gui.worker import EngineClient

if TYPE_CHECKING:
    from app.gui.compare_window import CompareWindow

log = logging.getLogger("starpad.window")

MAX_FILE_BYTES = 20 * 1024 * 1024
RECOVERY_INTERVAL_MS = 5000
MAX_RECENT = 10


def atomic_write(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to a temporary file beside ``path``, fsync, then rename over it.

    For Starpad's own files; the user's files go through ``save_text_file`` (exact format,
    links, permissions, change detection).
    """
    atomic_write_bytes(Path(path), text.encode("utf-8"))


class EmptyState(QWidget):
    """First start, no model: say what to do, and offer it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        title = QLabel(f"<h2>Welcome to {APP_NAME}</h2>")
        body = QLabel(
            "Starpad completes code with a StarCoder2 model running entirely on this computer.<br>"
            "Nothing you type leaves your machine.<br><br>"
            "Choose a StarCoder2 model that fits this computer, or open a <b>.gguf</b> you have.<br>"
            "You can keep typing meanwhile."
        )
        for label in (title, body):
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            layout.addWidget(label)
        self.models_button = QPushButton("Choose a model for this computer…")
        self.models_button.setMinimumWidth(260)
        self.open_button = QPushButton("Open a GGUF file…")
        self.open_button.setMinimumWidth(260)
        self.continue_button = QPushButton("Just edit for now")
        for button in (self.models_button, self.open_button, self.continue_button):
            layout.addWidget(button, alignment=Qt.AlignmentFlag.AlignCenter)
        layout.addStretch(2)


class MainWindow(QMainWindow):
    def __init__(
        self,
        settings: Settings,
        client: EngineClient | None = None,
        interactive: bool = True,
        recovery: RecoveryStore | None = None,
        recovery_interval_ms: int | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        #: False for headless runs (self-test): no modal dialogs that nobody can answer.
        self.interactive = interactive
        self.client = client or EngineClient(self)
        self.model_info: ModelInfo | None = None
        self.current_path: Path | None = None
        #: How the open file is stored (encoding, BOM, line endings): saves write it back that way.
        self.file_format = TextFormat.default()
        #: The file as last read or written; None for a new document.
        self.disk_fingerprint: Fingerprint | None = None
        #: The on-disk change the person was last told about (asked once per change, not per focus).
        self._disk_notice: tuple[DiskState, int, int] | None = None
        self._disk_check_busy = False
        self._closing = False
        #: Where the model being loaded runs (CPU / GPU layers), for the status bar.
        self._offload: OffloadPlan | None = None
        #: True while the window itself replaces the text (opening a file): not a user edit.
        self._replacing_text = False
        self._load_dialog: QProgressDialog | None = None
        self._last_result: tuple[CompletionResult, dict[int, str]] | None = None
        self.compare_window: CompareWindow | None = None

        self.editor = CodeEditor()
        self.highlighter = PygmentsHighlighter(self.editor.document())
        self.lexers = LexerResolver(self)
        self.lexers.resolved.connect(self._on_lexer_resolved)
        self._lexer_applied = 0
        self.empty_state = EmptyState()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_state)
        self.stack.addWidget(self.editor)
        self.setCentralWidget(self.stack)
        self.status = StatusPanel()
        self.setStatusBar(self.status)
        self.inspector = PromptInspector()
        self.inspector_dock = QDockWidget("Prompt inspector", self)
        self.inspector_dock.setObjectName("inspector")
        self.inspector_dock.setWidget(self.inspector)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.inspector_dock)
        self.inspector_dock.setVisible(settings.show_inspector)

        #: Completion policy lives in the Qt-free session; the bridge connects it to the widgets.
        self.completion = CompletionBridge(
            self.client, self.editor, self.status, settings, recent_files=lambda: self.settings.recent_files,
            not_an_edit=self._not_an_edit, parent=self,
        )
        self.document_id = self._untitled_id()
        self.completion.open_document(self.document_id, "", None)
        #: Unsaved text goes to this instance's own recovery session (see app/core/recovery.py).
        self.recovery = recovery if recovery is not None else default_recovery_store()
        self._recovery_document = new_document_id()
        self._recovery_dirty = True  # changed since its record was last written
        self.recovery_timer = QTimer(self)
        self.recovery_timer.setInterval(RECOVERY_INTERVAL_MS if recovery_interval_ms is None else recovery_interval_ms)
        self.recovery_timer.timeout.connect(self.write_recovery)
        self.recovery_timer.start()

        self._build_actions()
        self._connect()
        self.apply_settings()
        self.setAcceptDrops(True)
        self.resize(1180, 760)
        self.stack.setCurrentWidget(self.empty_state)
        self.status.set_state("no model")
        self._update_title()

    # ------------------------------------------------------------- set-up
    def _build_actions(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        self.act_new = file_menu.addAction("&New", QKeySequence.StandardKey.New, self.new_file)
        self.act_open = file_menu.addAction("&Open…", QKeySequence.StandardKey.Open, self.open_file_dialog)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.act_reopen_encoding = file_menu.addAction("Reopen with &Encoding…", self.reopen_with_encoding)
        self.act_save = file_menu.addAction("&Save", QKeySequence.StandardKey.Save, self.save)
        self.act_save_as = file_menu.addAction("Save &As…", QKeySequence.StandardKey.SaveAs, self.save_as)
        file_menu.addSeparator()
        file_menu.addAction("&Quit", QKeySequence.StandardKey.Quit, self.close)

        model_menu = menu.addMenu("&Model")
        self.act_models = model_menu.addAction("&Models…", self.open_model_manager)
        self.act_models.setShortcut(QKeySequence("Ctrl+M"))
        self.act_open_model = model_menu.addAction("Open &GGUF model…", self.open_model_dialog)
        self.act_compare = model_menu.addAction("&Compare quants…", self.open_comparison)
        model_menu.addSeparator()
        self.act_complete = model_menu.addAction("Complete &now", self.request_completion)
        self.act_complete.setShortcut(QKeySequence("Ctrl+Space"))
        self.act_auto = model_menu.addAction("&Automatic completion")
        self.act_auto.setCheckable(True)
        self.act_single = model_menu.addAction("&Single-line completions")
        self.act_single.setCheckable(True)
        self.act_repo = model_menu.addAction("Use other open &files as context")
        self.act_repo.setCheckable(True)

        self.act_preferences = model_menu.addAction("&Preferences…", self.open_preferences)
        self.act_preferences.setShortcut(QKeySequence.StandardKey.Preferences)

        view_menu = menu.addMenu("&View")
        self.act_dark = view_menu.addAction("&Dark theme")
        self.act_dark.setCheckable(True)
        self.act_inspector = self.inspector_dock.toggleViewAction()
        self.act_inspector.setText("Prompt &inspector")
        view_menu.addAction(self.act_inspector)

        toolbar = QToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setMovable(False)
        self.addToolBar(toolbar)
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

    def _connect(self) -> None:
        worker = self.client.worker
        worker.load_progress.connect(self._on_load_progress)
        worker.model_loaded.connect(self._on_model_loaded)
        worker.model_failed.connect(self._on_model_failed)
        self.completion.result_ready.connect(self._on_completion_result)
        self.editor.document().contentsChanged.connect(self._on_document_changed)
        self.editor.document().modificationChanged.connect(lambda _m: self._update_title())
        self.editor.document().contentsChanged.connect(self._on_recovery_dirty)
        self.editor.document().modificationChanged.connect(self._on_recovery_modification)
        self.editor.completion_requested.connect(self.request_completion)
        self.editor.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self.empty_state.open_button.clicked.connect(self.open_model_dialog)
        self.empty_state.models_button.clicked.connect(self.open_model_manager)
        self.empty_state.continue_button.clicked.connect(lambda: self.stack.setCurrentWidget(self.editor))
        self.act_auto.toggled.connect(self._on_auto_toggled)
        self.act_single.toggled.connect(lambda on: self._set_option("single_line", on))
        self.act_repo.toggled.connect(lambda on: self._set_option("use_repo_context", on))
        self.act_dark.toggled.connect(self.set_dark_theme)
        self.language_box.currentIndexChanged.connect(self._on_language_chosen)
        self.layout_box.currentIndexChanged.connect(
            lambda _i: self._set_option("layout", self.layout_box.currentData())
        )

    def apply_settings(self) -> None:
        s = self.settings
        self.completion.configure(s)
        self.editor.set_font_size(s.font_size)
        self.editor.set_indentation(s.indent_with_spaces, s.indent_width)
        self.act_auto.setChecked(s.auto_complete)
        self.act_single.setChecked(s.single_line)
        self.act_repo.setChecked(s.use_repo_context)
        self.act_dark.setChecked(s.dark_theme)
        self.layout_box.setCurrentIndex(max(0, self.layout_box.findData(s.layout)))
        self.set_dark_theme(s.dark_theme)
        self._rebuild_recent_menu()

    def open_preferences(self) -> None:
        dialog = PreferencesDialog(self.settings, self)
        if dialog.exec() == PreferencesDialog.DialogCode.Accepted:
            self.update_settings(dialog.result_settings())

    def update_settings(self, new: Settings) -> None:
        """Apply changed settings now; a new context size applies at the next load."""
        reload_needed = (new.n_ctx, new.threads, new.cache_reuse) != (
            self.settings.n_ctx, self.settings.threads, self.settings.cache_reuse
        )
        for field_name, value in vars(new).items():
            setattr(self.settings, field_name, value)
        self.apply_settings()
        save_settings(self.settings)
        if reload_needed and self.model_info is not None:
            self.load_model(str(self.model_info.path))

    def set_dark_theme(self, dark: bool) -> None:
        self.settings.dark_theme = dark
        theme = DARK if dark else LIGHT
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_palette(app, theme)
        self.editor.set_theme(theme)
        self.highlighter.set_style(theme.pygments_style)

    # ------------------------------------------------------------- models
    def open_model_manager(self) -> None:
        from app.gui.model_dialog import ModelDialog

        from app.core.download import HubDownloader

        downloader = HubDownloader(cache_dir=Path(self.settings.download_dir) if self.settings.download_dir else None)
        s = self.settings
        dialog = ModelDialog(
            self,
            n_ctx=s.n_ctx,
            downloader=downloader,
            target=SpeedTarget(s.target_gen_tps, s.target_prompt_seconds),
            n_gpu_layers=s.n_gpu_layers,
            threads=s.threads or None,
        )
        dialog.load_requested.connect(self.load_model_with_context)
        dialog.gpu_layers_changed.connect(self._on_gpu_layers_chosen)
        dialog.download_dir_changed.connect(self._on_download_dir_changed)
        dialog.exec()

    def open_comparison(self) -> None:
        from app.gui.compare_window import CompareWindow

        text = self.editor.document_text()
        position = self.editor.textCursor().position()
        current = str(self.model_info.path) if self.model_info else None
        self.compare_window = CompareWindow(text[:position], text[position:], current, self)
        self.compare_window.running_changed.connect(self._on_comparison_running)
        self.compare_window.show()

    def _on_comparison_running(self, running: bool) -> None:
        """Two llama.cpp contexts computing at once starve each other on a small CPU."""
        self.completion.session.set_paused(running)

    def _on_download_dir_changed(self, folder: str) -> None:
        self.settings.download_dir = folder

    def open_model_dialog(self) -> None:
        start = str(Path(self.settings.last_model).parent) if self.settings.last_model else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open GGUF model", start, "GGUF models (*.gguf);;All files (*)")
        if path:
            self.load_model(path)

    def load_model_with_context(self, path: str, n_ctx: int) -> None:
        """The model dialog's choice: its context size becomes the setting, then load."""
        if n_ctx != self.settings.n_ctx:
            self.settings.n_ctx = n_ctx
            save_settings(self.settings)
        self.load_model(path)

    def _on_gpu_layers_chosen(self, n_gpu_layers: int) -> None:
        self.settings.n_gpu_layers = n_gpu_layers
        save_settings(self.settings)

    def _plan_offload(self, path: str) -> OffloadPlan | None:
        """The GPU-layers setting for this file (auto: what fits in free VRAM); None: CPU."""
        try:
            return offload_for_model(self.settings.n_gpu_layers, model_info(path), self.settings.n_ctx)
        except StarpadError:
            return None  # the load itself reports what is wrong with the file

    def load_model(self, path: str) -> None:
        self._offload = self._plan_offload(path)
        config = EngineConfig(n_ctx=self.settings.n_ctx, n_threads=self.settings.threads or None,
                              n_gpu_layers=self._offload.n_gpu_layers if self._offload else 0,
                              reuse=ReuseMode(self.settings.cache_reuse),
                              clamp_to_trained=True)  # a preference for every model: lowered with a note
        self.status.set_state("loading", Path(path).name)
        self.completion.session.set_model_ready(False)
        self.stack.setCurrentWidget(self.editor)
        if not self.interactive:
            self.client.load_model(path, config)
            return
        self._load_dialog = QProgressDialog(f"Loading {Path(path).name}…", "Cancel", 0, 100, self)
        self._load_dialog.setWindowTitle("Loading model")
        self._load_dialog.setMinimumDuration(400)
        self._load_dialog.setAutoClose(True)
        self._load_dialog.canceled.connect(self.client.cancel_load)
        self._pending_model_path = path
        self.client.load_model(path, config)

    def _on_load_progress(self, value: float) -> None:
        if self._load_dialog is not None:
            self._load_dialog.setValue(int(value * 100))

    def _close_load_dialog(self) -> None:
        if self._load_dialog is not None:
            self._load_dialog.canceled.disconnect()
            self._load_dialog.close()
            self._load_dialog.deleteLater()
            self._load_dialog = None

    def _on_model_loaded(self, info: ModelInfo, seconds: float) -> None:
        self._close_load_dialog()
        self.model_info = info
        self.settings.last_model = str(info.path)
        self.status.set_model(info)
        if self._offload is not None:
            self.status.set_placement(self._offload.placement(), self._offload.reason)
        else:
            self.status.set_placement("CPU")
        self.status.set_state("idle", f"loaded in {seconds:.1f} s")
        self.status.set_context(0, self.settings.n_ctx)
        # Prefix-only models have no layout to choose; the status bar says so persistently.
        self.layout_box.setEnabled(not info.prefix_only)
        self.layout_box.setToolTip(info.notes[0] if info.notes else "")
        # No completion here: a model finishing its load is not an edit. The next keystroke,
        # caret request or Ctrl+Space asks; idle time prefills the prompt at the caret.
        self.completion.session.set_model_ready(True)

    def _on_model_failed(self, message: str) -> None:
        self._close_load_dialog()
        self.status.set_state("error" if self.model_info is None else "idle")
        self.completion.session.set_model_ready(self.model_info is not None)  # the old model stays loaded
        if not self._closing and self.interactive:
            QMessageBox.warning(self, "Could not load the model", message)

    # --------------------------------------------------------- completion
    def _not_an_edit(self) -> bool:
        """Opening a file, a file still loading, or colours arriving: the text changes
        without the user, and completions follow the user."""
        return self._replacing_text or self.editor.loading or self.highlighter.applying_formats

    def _set_option(self, name: str, value: object) -> None:
        setattr(self.settings, name, value)
        self.completion.configure(self.settings)

    def _on_auto_toggled(self, on: bool) -> None:
        self._set_option("auto_complete", on)

    def _on_document_changed(self) -> None:
        if not self._not_an_edit():
            self.completion.text_edited()

    def build_request(self) -> CompletionRequest:
        """The request a completion at the caret would send now (the session builds it)."""
        self.completion.sync()
        return self.completion.session.build_request()

    def request_completion(self) -> None:
        """Ctrl+Space: ask now."""
        if self.editor.loading:
            return  # asked again when the file is complete
        if self.completion.request_now() is RequestOutcome.NO_MODEL:
            self.statusBar().showMessage("Open a model first (Model → Open GGUF model…)", 4000)

    def _on_completion_result(self, result: CompletionResult, token_texts: dict[int, str]) -> None:
        if self.inspector_dock.isVisible():
            self.inspector.show_prompt(result.prompt, result.stats, token_texts)
        self._last_result = (result, token_texts)

    def _untitled_id(self) -> str:
        return f"untitled:{new_document_id()}"

    def _document_id_for(self, path: Path | None) -> str:
        """Documents are keyed by their real path, so a file opened again finds its state
        (and the engine its KV snapshot); an unnamed text gets a fresh key."""
        return os.path.realpath(path) if path is not None else self._untitled_id()

    def _on_scrolled(self, _value: int) -> None:
        self.highlighter.set_visible_range(*self.editor.visible_block_range())

    # --------------------------------------------------------------- files
    def _on_language_chosen(self, _index: int) -> None:
        alias = self.language_box.currentData()
        if alias:
            self.lexers.for_alias(alias)
        else:
            self._detect_language()

    def _detect_language(self) -> None:
        name = self.current_path.name if self.current_path else None
        self.lexers.for_file(name, self.editor.toPlainText()[:4000])

    @Slot(int, object)
    def _on_lexer_resolved(self, request_id: int, lexer: Lexer) -> None:
        if request_id == self.lexers.latest_request:
            self._lexer_applied = request_id
            self.highlighter.set_lexer(lexer)

    @property
    def language_pending(self) -> bool:
        """A lexer is still being looked up (tests and the benchmark wait for it)."""
        return self.lexers.latest_request != self._lexer_applied

    def maybe_save(self) -> bool:
        """Ask before discarding changes; True when it is fine to go on."""
        if not self.editor.document().isModified():
            return True
        answer = QMessageBox.question(
            self,
            "Unsaved changes",
            f"Save changes to {self.current_path.name if self.current_path else 'the new file'}?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def new_file(self) -> None:
        if not self.maybe_save():
            return
        self._replacing_text = True
        try:
            self.editor.setPlainText("")
        finally:
            self._replacing_text = False
        self.document_id = self._untitled_id()
        self.completion.open_document(self.document_id, "", None)
        self.current_path = None
        self.set_file_state(TextFormat.default(), None)
        self.editor.document().setModified(False)
        self.stack.setCurrentWidget(self.editor)
        self._update_title()

    def open_file_dialog(self) -> None:
        if not self.maybe_save():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open file", str(Path.home()))
        if path:
            self.open_file(Path(path))

    def open_file(self, path: Path, encoding: str | None = None) -> bool:
        """Open a text file exactly as it is: its encoding, BOM and line endings are kept for saving.

        A huge, binary or undecodable file is refused with a message and the editor keeps its
        text; an 8-bit file whose encoding is uncertain asks which one (``encoding`` forces one).
        """
        path = Path(path)
        try:
            loaded = read_text_file(path, encoding=encoding, max_bytes=MAX_FILE_BYTES)
        except UncertainEncodingError as exc:
            chosen = self._choose_encoding(path, exc)
            return chosen is not None and self.open_file(path, chosen)
        except TextFileError as exc:
            self._file_error(str(exc))
            return False
        except OSError as exc:
            self._file_error(f"cannot open {path}: {exc.strerror or exc}")
            return False
        text = loaded.text
        self.editor.clear_ghost()
        self.highlighter.forget()
        self._replacing_text = True
        try:
            self.editor.load_text(text)
        except ValueError as exc:  # text the editor cannot hold exactly: refused, editor untouched
            self._file_error(f"{path.name}: {exc}")
            return False
        finally:
            self._replacing_text = False
        self.current_path = path
        self.document_id = self._document_id_for(path)
        self.completion.open_document(self.document_id, text, path)  # the session's current document now
        self.set_file_state(loaded.format, loaded.fingerprint)
        if loaded.format.note:
            self.statusBar().showMessage(loaded.format.note, 15000)
        self.stack.setCurrentWidget(self.editor)
        self.highlighter.set_visible_range(*self.editor.visible_block_range())
        if not self.language_box.currentData():
            self._detect_language()
        self._remember_recent(path)
        self._update_title()
        return True

    def _choose_encoding(self, path: Path, error: UncertainEncodingError) -> str | None:
        """Let the person pick the encoding the text reads right in (None: cancelled)."""
        if self._is_current_file(path) and self.file_format.encoding in error.candidates:
            return self.file_format.encoding  # reloading: the encoding chosen before still fits
        if not self.interactive:
            return error.guess
        items = [f"{encoding_display_name(e)}:  {error.samples[e]}" for e in error.candidates]
        item, ok = QInputDialog.getItem(
            self,
            "Choose the file's encoding",
            f"{error}.\nIts first line with non-ASCII characters, read in each encoding:",
            items,
            0,
            False,
        )
        return error.candidates[items.index(item)] if ok and item in items else None

    def reopen_with_encoding(self) -> bool:
        """Read the open file again in an encoding the person picks (a plausible but wrong guess)."""
        path = self.current_path
        if path is None:
            self.statusBar().showMessage("Open a file first.", 4000)
            return False
        if not self.maybe_save():
            return False
        try:
            choices = encoding_choices(path.read_bytes())
        except OSError as exc:
            self._file_error(f"cannot open {path}: {exc.strerror or exc}")
            return False
        items = [f"{encoding_display_name(encoding)}:  {sample}" for encoding, sample in choices]
        current = next((i for i, (e, _s) in enumerate(choices) if e == self.file_format.encoding), 0)
        item, ok = QInputDialog.getItem(self, "Reopen with encoding", f"Read {path.name} as:", items, current, False)
        if not ok or item not in items:
            return False
        return self.open_file(path, choices[items.index(item)][0])

    def set_file_state(self, fmt: TextFormat, fingerprint: Fingerprint | None) -> None:
        """How the open file is stored and which version of it the text is based on.

        Recovery restores these with the text, so a recovered CRLF file is saved as CRLF and
        a save still notices a newer file on disk.
        """
        self.file_format = fmt
        self.disk_fingerprint = fingerprint
        self._disk_notice = None
        self.status.set_file_format(fmt.label if self.current_path else "", fmt.note or "")

    def _is_current_file(self, path: Path) -> bool:
        if self.current_path is None:
            return False
        return os.path.realpath(path) == os.path.realpath(self.current_path)

    def _ask(self, title: str, text: str) -> bool:
        """A yes/no question; headless runs (no one to answer) get no."""
        if not self.interactive:
            log.info("%s: answered no (not interactive)", title)
            return False
        yes, no = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
        return QMessageBox.question(self, title, text, yes | no, no) == yes

    def _file_error(self, message: str) -> None:
        log.info("file refused: %s", message)
        QMessageBox.warning(self, "Cannot open file", message)

    def save(self) -> bool:
        if self.current_path is None:
            return self.save_as()
        return self._write(self.current_path)

    def save_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self, "Save as", str(self.current_path or Path.home()))
        if not path:
            return False
        return self._write(Path(path))

    def _write(self, path: Path) -> bool:
        """Save the exact text in the file's own format; ask first where something could be lost.

        Asks before overwriting a file another program changed, before writing a read-only
        file, and before switching to UTF-8 when the file's encoding cannot store a character.
        Whatever happens, the text stays in the editor.
        """
        path = Path(path)
        text = self.editor.document_text()
        fmt = self.file_format
        same_file = self._is_current_file(path)
        expected = self.disk_fingerprint if same_file else None
        if same_file and expected is None and path.exists():
            # e.g. restored after a crash: this version on disk was never read here.
            if not self._ask(
                "Overwrite file?",
                f"{path.name} exists on disk and Starpad has not read this version of it.\n\n"
                "Overwrite it with your text?",
            ):
                return False
        self._disk_check_busy = True  # no reload question from a focus change amid these questions
        try:
            saved = self._save_asking(path, text, fmt, expected)
        finally:
            self._disk_check_busy = False
        if saved is None:
            return False
        fingerprint, fmt = saved
        before = self.file_format
        new_format = saved_format(text, fmt)
        self.current_path = path
        self.completion.session.set_path(self.document_id, path)
        self.set_file_state(new_format, fingerprint)
        if new_format.encoding != before.encoding or (before.mixed is not None and new_format.mixed is None):
            self.statusBar().showMessage(f"Saved as {new_format.label}.", 8000)
        self.editor.document().setModified(False)
        self._remember_recent(path)
        self._update_title()
        self._drop_recovery_record()
        return True

    def _save_asking(
        self, path: Path, text: str, fmt: TextFormat, expected: Fingerprint | None
    ) -> tuple[Fingerprint, TextFormat] | None:
        """Save, asking where something could be lost; (fingerprint, format used) or None."""
        overwrite_readonly = False
        while True:
            try:
                return save_text_file(path, text, fmt, overwrite_readonly=overwrite_readonly, expected=expected), fmt
            except FileChangedOnDiskError:
                self._disk_notice = self._notice_for(path)  # asked about this change: not again on focus
                if not self._ask(
                    "File changed on disk",
                    f"{path.name} was changed by another program since Starpad opened or saved it.\n\n"
                    "Overwrite it with your text? Its other changes would be lost. "
                    "(No: nothing is written and your text stays here.)",
                ):
                    return None
                expected = None
            except ReadOnlyFileError:
                if not self._ask(
                    "Overwrite read-only file?",
                    f"{path.name} is read-only.\n\nOverwrite it anyway? It stays read-only afterwards.",
                ):
                    return None
                overwrite_readonly = True
            except UnencodableTextError as exc:
                if fmt.encoding == "utf-8":  # only a lone surrogate gets here
                    QMessageBox.critical(self, "Could not save", f"{exc} Your text is still here.")
                    return None
                if not self._ask(
                    f"Cannot save in {encoding_display_name(fmt.encoding)}",
                    f"{exc}\n\nSave {path.name} as UTF-8 instead? (No: nothing is written and your text stays here.)",
                ):
                    return None
                fmt = fmt.with_encoding("utf-8")
            except (TextFileError, OSError) as exc:
                reason = str(exc) if isinstance(exc, TextFileError) else f"{path}: {exc.strerror or exc}"
                QMessageBox.critical(self, "Could not save", f"{reason}. Your text is still here.")
                return None

    @staticmethod
    def _notice_for(path: Path) -> tuple[DiskState, int, int] | None:
        """Identifies one change on disk (state, mtime, size), to ask about it once."""
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return (DiskState.DELETED, 0, 0)
        except OSError:
            return None
        return (DiskState.MODIFIED, info.st_mtime_ns, info.st_size)

    # ------------------------------------------------------------ recovery
    def _on_recovery_dirty(self) -> None:
        self._recovery_dirty = True

    def _on_recovery_modification(self, modified: bool) -> None:
        """Saved, undone back to the saved text, or replaced after the user's Save/Discard."""
        if not modified:
            self._drop_recovery_record()

    def _recovery_snapshot(self) -> DocumentSnapshot:
        return DocumentSnapshot(
            text=self.editor.document_text(),  # exact, unlike toPlainText
            path=self.current_path,
            caret=self.editor.textCursor().position(),
            file_format=self.file_format.as_dict(),
            disk_fingerprint=self.disk_fingerprint.as_dict() if self.disk_fingerprint is not None else None,
        )

    def _recovered_file_state(self, candidate: RecoveryCandidate) -> tuple[TextFormat, Fingerprint | None]:
        """The restored document's format, and the disk version its text was based on.

        An unchanged file keeps that fingerprint, so saving needs no question; a file changed
        since keeps the old one, so saving asks before overwriting the other program's edits.
        """
        try:
            fmt = TextFormat.from_dict(candidate.file_format) if candidate.file_format else TextFormat.default()
        except (KeyError, TypeError, ValueError, LookupError):
            log.warning("recovery record %s: unreadable file format, using UTF-8", candidate.key)
            fmt = TextFormat.default()
        try:
            known = Fingerprint.from_dict(candidate.disk_fingerprint) if candidate.disk_fingerprint else None
        except (KeyError, TypeError, ValueError):
            known = None
        if known is not None and candidate.original_path is not None:
            check = check_disk(candidate.original_path, known, thorough=True)
            if check.state is DiskState.UNCHANGED and check.current is not None:
                known = check.current
        return fmt, known

    def write_recovery(self) -> bool:
        """Put the unsaved text into this instance's recovery record now (the timer calls it).

        True when the record on disk is current, or there is nothing unsaved to keep.
        """
        if not self.editor.document().isModified() or not self._recovery_dirty:
            return True
        try:
            self.recovery.session.write(self._recovery_document, self._recovery_snapshot())
        except OSError as exc:
            log.warning("could not write the recovery record: %s", exc.strerror or exc)
            self.statusBar().showMessage(f"Could not write the recovery copy: {exc.strerror or exc}", 8000)
            return False
        self._recovery_dirty = False
        return True

    def _drop_recovery_record(self) -> None:
        """The text is saved or knowingly discarded: its record has done its job."""
        self._recovery_dirty = True
        try:
            self.recovery.session.remove(self._recovery_document)
        except OSError as exc:
            log.warning("could not remove the recovery record: %s", exc.strerror or exc)

    def adopt_recovery(self, candidate: RecoveryCandidate) -> bool:
        """Take text a dead instance left as this window's modified document.

        The old record is removed only after this instance's own record holds the text, so
        a crash at any moment leaves at least one copy on disk. True when that handover
        happened; False when this instance could not write its copy (the old record stays).
        """
        self.editor.finish_loading()  # a file still loading in chunks must not append to it
        self.editor.clear_ghost()
        self.highlighter.forget()
        self._replacing_text = True
        try:
            self.editor.setPlainText(candidate.text)
        finally:
            self._replacing_text = False
        self.current_path = candidate.original_path
        self.set_file_state(*self._recovered_file_state(candidate))
        self.editor.document().setModified(True)
        cursor = self.editor.textCursor()
        cursor.setPosition(max(0, min(candidate.caret, self.editor.document().characterCount() - 1)))
        self._replacing_text = True  # the caret placed by the window: not the user's move
        try:
            self.editor.setTextCursor(cursor)
        finally:
            self._replacing_text = False
        self.document_id = self._document_id_for(self.current_path)
        self.completion.open_document(self.document_id, candidate.text, self.current_path)
        self.stack.setCurrentWidget(self.editor)
        self.highlighter.set_visible_range(*self.editor.visible_block_range())
        if not self.language_box.currentData():
            self._detect_language()
        self._update_title()
        self._recovery_dirty = True
        if not self.write_recovery():
            return False  # the text is in the editor; the old record stays until this window has a copy
        try:
            self.recovery.remove(candidate, Resolution.RESTORED)
        except OSError as exc:
            log.warning("could not remove the restored recovery record: %s", exc.strerror or exc)
        self.statusBar().showMessage(f"Restored the unsaved text of {candidate.title}. Save it to keep it.", 10000)
        return True

    def _close_recovery(self) -> None:
        """Closing after a save or a knowing Discard: nothing of this window is left to recover."""
        self._drop_recovery_record()
        self.recovery.close()

    def _remember_recent(self, path: Path) -> None:
        recent = [str(path)] + [p for p in self.settings.recent_files if p != str(path)]
        self.settings.recent_files = recent[:MAX_RECENT]
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        for name in self.settings.recent_files:
            self.recent_menu.addAction(name, functools.partial(self._open_recent, Path(name)))
        self.recent_menu.setEnabled(bool(self.settings.recent_files))

    def _open_recent(self, path: Path) -> None:
        if self.maybe_save():
            self.open_file(path)

    def _update_title(self) -> None:
        name = self.current_path.name if self.current_path else "untitled"
        self.setWindowTitle(f"{name}{' •' if self.editor.document().isModified() else ''} — {APP_NAME}")

    # ------------------------------------------------- changes made on disk
    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow() and not self._closing:
            # Coming back to the window is when another program's change becomes relevant.
            # Checked after the event, since it may open a dialog.
            QTimer.singleShot(0, self, self.check_disk_changes)

    def check_disk_changes(self) -> DiskState | None:
        """Notice a change or deletion of the open file made by another program.

        Asks once per change: reload it, or keep the editor's text (then a save asks again
        before overwriting the newer file). A deleted file is reported; the text stays and
        counts as unsaved. Returns what was found (None: no file to compare with).
        """
        path, known = self.current_path, self.disk_fingerprint
        if self._disk_check_busy or path is None or known is None:
            return None
        self._disk_check_busy = True
        try:
            check = check_disk(path, known)
            if check.state is DiskState.UNCHANGED and check.current is not None:
                self.disk_fingerprint = check.current  # touched with the same content: no more hashing
            if check.state in (DiskState.UNCHANGED, DiskState.UNREADABLE):
                return check.state
            notice = self._notice_for(path)
            if notice == self._disk_notice:
                return check.state  # already told about this very change
            self._disk_notice = notice
            if check.state is DiskState.DELETED:
                log.info("%s was deleted on disk", path)
                self.editor.document().setModified(True)
                if self.interactive:
                    QMessageBox.information(
                        self,
                        "File deleted on disk",
                        f"{path.name} was deleted or moved away by another program.\n\n"
                        "Your text is still here; Save writes it back.",
                    )
                return check.state
            log.info("%s was changed on disk", path)
            unsaved = self.editor.document().isModified()
            if self._ask(
                "File changed on disk",
                f"{path.name} was changed by another program.\n\nReload it from disk?"
                + (" Your unsaved changes would be lost." if unsaved else "")
                + "\n(No: keep the text shown here; saving will ask before overwriting the newer file.)",
            ):
                self.reload_file()
            else:
                self.editor.document().setModified(True)  # it differs from the file now
                self.statusBar().showMessage(f"Kept your text; {path.name} on disk is newer.", 8000)
            return check.state
        finally:
            self._disk_check_busy = False

    def reload_file(self) -> bool:
        """Read the open file again from disk (its encoding kept if it is still a fit)."""
        if self.current_path is None:
            return False
        return self.open_file(self.current_path)

    # -------------------------------------------------------- drag & drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        for url in event.mimeData().urls():
            path = Path(QUrl(url).toLocalFile())
            if path.suffix.lower() == ".gguf":
                self.load_model(str(path))
            elif self.maybe_save():
                self.open_file(path)
            break

    # ------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if not self.maybe_save():
            event.ignore()
            return
        self._closing = True
        if self.compare_window is not None:
            self.compare_window.close()
        self.completion.shutdown()
        self.recovery_timer.stop()
        self.settings.show_inspector = self.inspector_dock.isVisible()
        save_settings(self.settings)
        self.client.shutdown()
        self.lexers.shutdown()
        self._close_recovery()
        event.accept()
