"""The playground window: editor, completion flow, files, status and inspector."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from pygments.lexer import Lexer
from PySide6.QtCore import QStandardPaths, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
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

from app import APP_NAME
from app.core.engine import CompletionRequest, CompletionResult, EngineConfig, SamplingParams
from app.core.fim import Layout, RepoFile
from app.core.ghost import Ghost
from app.core.model_info import ModelInfo
from app.core.units import format_bytes
from app.gui.editor import CodeEditor
from app.gui.highlighter import LexerResolver, PygmentsHighlighter, all_languages
from app.gui.inspector import PromptInspector
from app.gui.preferences import PreferencesDialog
from app.gui.settings import Settings, save_settings
from app.gui.statusbar import StatusPanel
from app.gui.theme import DARK, LIGHT, apply_palette
from app.gui.worker import EngineClient

log = logging.getLogger("starpad.window")

MAX_FILE_BYTES = 20 * 1024 * 1024
RECOVERY_INTERVAL_MS = 5000
MAX_RECENT = 10


def recovery_path() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation) or tempfile.gettempdir()
    return Path(base) / "recovery.txt"


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    def __init__(self, settings: Settings, client: EngineClient | None = None, interactive: bool = True) -> None:
        super().__init__()
        self.settings = settings
        #: False for headless runs (self-test): no modal dialogs that nobody can answer.
        self.interactive = interactive
        self.client = client or EngineClient(self)
        self.model_info: ModelInfo | None = None
        self.current_path: Path | None = None
        self._ghost_request_id = 0
        self._ghost_origin = 0
        self._ghost_streamed = ""
        self._closing = False
        self._load_dialog: QProgressDialog | None = None
        self._last_result: tuple[CompletionResult, dict[int, str]] | None = None
        self._comparison_running = False
        self.compare_window = None

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

        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.timeout.connect(self.request_completion)
        self.recovery_timer = QTimer(self)
        self.recovery_timer.setInterval(RECOVERY_INTERVAL_MS)
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
        worker.completion_started.connect(self._on_completion_started)
        worker.text_streamed.connect(self._on_text_streamed)
        worker.completion_finished.connect(self._on_completion_finished)
        worker.completion_failed.connect(self._on_completion_failed)
        self.editor.document().contentsChanged.connect(self._on_document_changed)
        self.editor.document().modificationChanged.connect(lambda _m: self._update_title())
        self.editor.completion_requested.connect(self.request_completion)
        self.editor.ghost_dismissed.connect(self.client.cancel_completion)
        self.editor.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self.empty_state.open_button.clicked.connect(self.open_model_dialog)
        self.empty_state.models_button.clicked.connect(self.open_model_manager)
        self.empty_state.continue_button.clicked.connect(lambda: self.stack.setCurrentWidget(self.editor))
        self.act_auto.toggled.connect(self._on_auto_toggled)
        self.act_single.toggled.connect(lambda on: setattr(self.settings, "single_line", on))
        self.act_repo.toggled.connect(lambda on: setattr(self.settings, "use_repo_context", on))
        self.act_dark.toggled.connect(self.set_dark_theme)
        self.language_box.currentIndexChanged.connect(self._on_language_chosen)
        self.layout_box.currentIndexChanged.connect(
            lambda _i: setattr(self.settings, "layout", self.layout_box.currentData())
        )

    def apply_settings(self) -> None:
        s = self.settings
        self.debounce.setInterval(s.debounce_ms)
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
        reload_needed = new.n_ctx != self.settings.n_ctx or new.threads != self.settings.threads
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
        dialog = ModelDialog(self, n_ctx=self.settings.n_ctx, downloader=downloader)
        dialog.load_requested.connect(self.load_model)
        dialog.download_dir_changed.connect(self._on_download_dir_changed)
        dialog.exec()

    def open_comparison(self) -> None:
        from app.gui.compare_window import CompareWindow

        self.editor.finish_loading()
        text = self.editor.toPlainText()
        position = self.editor.textCursor().position()
        current = str(self.model_info.path) if self.model_info else None
        self.compare_window = CompareWindow(text[:position], text[position:], current, self)
        self.compare_window.running_changed.connect(self._on_comparison_running)
        self.compare_window.show()

    def _on_comparison_running(self, running: bool) -> None:
        """Two llama.cpp contexts computing at once starve each other on a small CPU."""
        self._comparison_running = running
        if running:
            self.debounce.stop()
            self.client.cancel_completion()
            self.editor.clear_ghost()
            self.status.set_state("idle", "· paused while comparing quants")

    def _on_download_dir_changed(self, folder: str) -> None:
        self.settings.download_dir = folder

    def open_model_dialog(self) -> None:
        start = str(Path(self.settings.last_model).parent) if self.settings.last_model else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open GGUF model", start, "GGUF models (*.gguf);;All files (*)")
        if path:
            self.load_model(path)

    def load_model(self, path: str) -> None:
        config = EngineConfig(n_ctx=self.settings.n_ctx, n_threads=self.settings.threads or None)
        self.status.set_state("loading", Path(path).name)
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
        self.status.set_state("idle", f"loaded in {seconds:.1f} s")
        self.status.set_context(0, self.settings.n_ctx)
        # Prefix-only models have no layout to choose; the status bar says so persistently.
        self.layout_box.setEnabled(not info.prefix_only)
        self.layout_box.setToolTip(info.notes[0] if info.notes else "")
        if self.settings.auto_complete and self.editor.toPlainText().strip():
            self.debounce.start()

    def _on_model_failed(self, message: str) -> None:
        self._close_load_dialog()
        self.status.set_state("error" if self.model_info is None else "idle")
        if not self._closing and self.interactive:
            QMessageBox.warning(self, "Could not load the model", message)

    # --------------------------------------------------------- completion
    def _on_auto_toggled(self, on: bool) -> None:
        self.settings.auto_complete = on
        if not on:
            self.debounce.stop()

    def _on_document_changed(self) -> None:
        if self.editor.ghost is not None:
            return  # the user typed what the ghost showed: keep it, ask nothing new
        self.client.cancel_completion()
        self._ghost_request_id = 0
        if self.settings.auto_complete and self.model_info is not None:
            self.debounce.start()

    def build_request(self) -> CompletionRequest:
        cursor = self.editor.textCursor()
        text = self.editor.toPlainText()
        position = cursor.position()
        s = self.settings
        layout = Layout(s.layout)
        return CompletionRequest(
            prefix=text[:position],
            suffix=text[position:],
            layout=layout,
            max_tokens=s.max_tokens,
            single_line=s.single_line,
            sampling=SamplingParams(temperature=s.temperature, top_p=s.top_p),
            path=self.current_path.name if self.current_path else None,
            repo_name=Path.cwd().name if s.use_repo_context else None,
            repo_files=self._repo_files() if s.use_repo_context else (),
        )

    def _repo_files(self) -> tuple[RepoFile, ...]:
        """Recent files from the same folder stand in for 'other open files'."""
        if self.current_path is None:
            return ()
        files = []
        for name in self.settings.recent_files[:MAX_RECENT]:
            path = Path(name)
            if path != self.current_path and path.parent == self.current_path.parent and path.is_file():
                try:
                    files.append(RepoFile(path.name, path.read_text(encoding="utf-8")[:20000]))
                except (OSError, UnicodeDecodeError):
                    continue
        return tuple(files)

    def request_completion(self) -> None:
        if self._comparison_running:
            return
        if self.model_info is None:
            self.statusBar().showMessage("Open a model first (Model → Open GGUF model…)", 4000)
            return
        if self.editor.loading:
            return  # asked again when the file is complete
        self.debounce.stop()
        self.editor.clear_ghost()
        self._ghost_origin = self.editor.textCursor().position()
        self._ghost_streamed = ""
        self._ghost_revision = self.editor.document().revision()
        self._ghost_request_id = self.client.request_completion(self.build_request())
        self.status.set_state("thinking")

    def _is_current(self, request_id: int) -> bool:
        return request_id == self._ghost_request_id and request_id == self.client.latest_request_id

    def _on_completion_started(self, request_id: int) -> None:
        if self._is_current(request_id):
            self.status.set_state("thinking")

    def _on_text_streamed(self, request_id: int, piece: str) -> None:
        if not self._is_current(request_id):
            return  # stale: a newer request exists, or the user moved on
        self._ghost_streamed += piece
        self.status.set_state("streaming")
        self._show_ghost_from(self._ghost_streamed)

    def _show_ghost_from(self, full_text: str) -> None:
        """Show what remains of ``full_text`` after what the user already typed of it."""
        position = self.editor.textCursor().position()
        consumed = position - self._ghost_origin
        if consumed < 0:
            self.editor.clear_ghost()
            return
        typed = self.editor.toPlainText()[self._ghost_origin : position]
        if not full_text.startswith(typed):
            self.editor.clear_ghost()
            return
        self.editor.show_ghost(Ghost(position, full_text[consumed:]) if full_text[consumed:] else None)

    def _on_completion_finished(self, request_id: int, result: CompletionResult, token_texts: dict[int, str]) -> None:
        self.status.show_stats(result.stats)
        if self.inspector_dock.isVisible():
            self.inspector.show_prompt(result.prompt, result.stats, token_texts)
        self._last_result = (result, token_texts)
        if not self._is_current(request_id):
            return
        self.status.set_state("idle", f"· {result.stop_reason.replace('_', ' ')}")
        self._show_ghost_from(result.text)

    def _on_completion_failed(self, request_id: int, message: str) -> None:
        if self._is_current(request_id):
            self.status.set_state("error")
            self.statusBar().showMessage(f"Completion failed: {message}", 8000)

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
        self.editor.setPlainText("")
        self.current_path = None
        self.editor.document().setModified(False)
        self.stack.setCurrentWidget(self.editor)
        self._update_title()

    def open_file_dialog(self) -> None:
        if not self.maybe_save():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open file", str(Path.home()))
        if path:
            self.open_file(Path(path))

    def open_file(self, path: Path) -> bool:
        """Open a text file; a huge or binary file is refused with a message, nothing lost."""
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise ValueError(f"{path.name} is {format_bytes(size)}: larger than the editor's {format_bytes(MAX_FILE_BYTES)} limit")
            raw = path.read_bytes()
            if b"\0" in raw[:8192]:
                raise ValueError(f"{path.name} looks like a binary file, not text")
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._file_error(f"{path.name} is not UTF-8 text")
            return False
        except (OSError, ValueError) as exc:
            self._file_error(str(exc) if isinstance(exc, ValueError) else f"cannot open {path}: {exc.strerror}")
            return False
        self.editor.clear_ghost()
        self.highlighter.forget()
        self.editor.load_text(text)
        self.current_path = path
        self.stack.setCurrentWidget(self.editor)
        self.highlighter.set_visible_range(*self.editor.visible_block_range())
        if not self.language_box.currentData():
            self._detect_language()
        self._remember_recent(path)
        self._update_title()
        return True

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
        self.editor.finish_loading()
        try:
            atomic_write(path, self.editor.toPlainText())
        except OSError as exc:
            QMessageBox.critical(self, "Could not save", f"{path}: {exc.strerror or exc}. Your text is still here.")
            return False
        self.current_path = path
        self.editor.document().setModified(False)
        self._remember_recent(path)
        self._update_title()
        recovery_path().unlink(missing_ok=True)
        return True

    def write_recovery(self) -> None:
        """Keep unsaved text on disk so a crash loses nothing."""
        if not self.editor.document().isModified():
            return
        path = recovery_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            header = f"{self.current_path or ''}\n"
            atomic_write(path, header + self.editor.toPlainText())
        except OSError:
            log.warning("could not write the recovery file")

    def restore_recovery(self) -> bool:
        path = recovery_path()
        if not path.is_file():
            return False
        original, _, text = path.read_text(encoding="utf-8").partition("\n")
        self.editor.setPlainText(text)
        self.current_path = Path(original) if original else None
        self.editor.document().setModified(True)
        self.stack.setCurrentWidget(self.editor)
        self._detect_language()
        self.statusBar().showMessage("Recovered unsaved text from the last session.", 8000)
        return True

    def _remember_recent(self, path: Path) -> None:
        recent = [str(path)] + [p for p in self.settings.recent_files if p != str(path)]
        self.settings.recent_files = recent[:MAX_RECENT]
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        for name in self.settings.recent_files:
            self.recent_menu.addAction(name, lambda n=name: self.maybe_save() and self.open_file(Path(n)))
        self.recent_menu.setEnabled(bool(self.settings.recent_files))

    def _update_title(self) -> None:
        name = self.current_path.name if self.current_path else "untitled"
        self.setWindowTitle(f"{name}{' •' if self.editor.document().isModified() else ''} — {APP_NAME}")

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
        self.debounce.stop()
        self.recovery_timer.stop()
        self.settings.show_inspector = self.inspector_dock.isVisible()
        save_settings(self.settings)
        self.client.shutdown()
        self.lexers.shutdown()
        recovery_path().unlink(missing_ok=True)
        event.accept()
