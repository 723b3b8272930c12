"""Choosing, loading and comparing models from the window.

The model manager, the GGUF file dialog, the loading progress, where the model runs
(CPU / GPU layers), and the quant comparison window; the completion session is told
when a model is ready, and paused while a comparison owns the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMessageBox, QProgressDialog

from app.core.engine import EngineConfig
from app.core.model_info import ModelInfo
from app.core.offload import OffloadPlan
from app.core.remote.base import RemoteDescription
from app.core.remote.profile import ServerProfile, profiles_from_json
from app.core.reuse_plan import ReuseMode
from app.core.session import CompletionSession
from app.core.speed import SpeedTarget
from app.gui.editor import CodeEditor
from app.gui.settings import Settings, save_settings
from app.gui.statusbar import StatusPanel
from app.gui.worker import EngineClient

if TYPE_CHECKING:
    from app.gui.compare_window import CompareWindow

log = logging.getLogger("starpad.models")


class ModelControl(QObject):
    """The window's model: which one, loading it, and the dialogs that choose it."""

    #: A model finished loading (the window enables what needs one).
    loaded = Signal(object)  # ModelInfo

    def __init__(
        self,
        window: QMainWindow,
        client: EngineClient,
        session: CompletionSession,
        status: StatusPanel,
        settings: Settings,
        interactive: bool,
        show_editor: Callable[[], None],
        current_editor: Callable[[], CodeEditor],
    ) -> None:
        super().__init__(window)
        self._window = window
        self.client = client
        self.session = session
        self.status = status
        self.settings = settings
        self.interactive = interactive
        self._show_editor = show_editor
        #: The editor of the tab in front (the comparison takes its text at the caret).
        self._current_editor = current_editor
        self.model_info: ModelInfo | None = None
        #: Where the model being loaded runs (CPU / GPU layers), for the status bar.
        self._offload: OffloadPlan | None = None
        self._load_dialog: QProgressDialog | None = None
        #: True once the window closes: no more message boxes.
        self.closing = False
        self.compare_window: CompareWindow | None = None
        worker = client.worker
        worker.load_progress.connect(self._on_load_progress)
        worker.model_loaded.connect(self._on_model_loaded)
        worker.offload_planned.connect(self._on_offload_planned)
        worker.model_failed.connect(self._on_model_failed)
        #: The server completions come from (None: the local model; nothing leaves the machine).
        self.remote: RemoteDescription | None = None
        worker.server_connected.connect(self._on_server_connected)

    # ------------------------------------------------------------- dialogs
    def open_model_manager(self) -> None:
        from app.core.download import HubDownloader
        from app.gui.model_dialog import ModelDialog

        s = self.settings
        downloader = HubDownloader(cache_dir=Path(s.download_dir) if s.download_dir else None)
        dialog = ModelDialog(
            self._window,
            n_ctx=s.n_ctx,
            downloader=downloader,
            target=SpeedTarget(s.target_gen_tps, s.target_prompt_seconds),
            n_gpu_layers=s.n_gpu_layers,
            threads=s.threads or None,
            profiles=profiles_from_json(s.server_profiles),
        )
        dialog.load_requested.connect(self.load_model_with_context)
        dialog.server_requested.connect(self.connect_server)
        dialog.profiles_changed.connect(self._on_profiles_changed)
        dialog.gpu_layers_changed.connect(self._on_gpu_layers_chosen)
        dialog.download_dir_changed.connect(self._on_download_dir_changed)
        dialog.exec()

    def open_comparison(self) -> None:
        from app.gui.compare_window import CompareWindow

        editor = self._current_editor()
        text, position = editor.document_text(), editor.textCursor().position()
        current = str(self.model_info.path) if self.model_info else None
        self.compare_window = CompareWindow(text[:position], text[position:], current, self._window,
                                            n_gpu_layers=self.settings.n_gpu_layers)
        self.compare_window.running_changed.connect(self.set_comparison_running)
        self.compare_window.show()

    def set_comparison_running(self, running: bool) -> None:
        """Two llama.cpp contexts computing at once starve each other on a small CPU."""
        self.session.set_paused(running)

    def _on_download_dir_changed(self, folder: str) -> None:
        self.settings.download_dir = folder

    def open_model_dialog(self) -> None:
        start = str(Path(self.settings.last_model).parent) if self.settings.last_model else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self._window, "Open GGUF model", start, "GGUF models (*.gguf);;All files (*)"
        )
        if path:
            self.load_model(path)

    def load_model_with_context(self, path: str, n_ctx: int) -> None:
        """The model dialog's choice: its context size becomes the setting, then load."""
        if n_ctx != self.settings.n_ctx:
            self.settings.n_ctx = n_ctx
            save_settings(self.settings)
        self.load_model(path)

    def _on_profiles_changed(self, profiles_json: str) -> None:
        self.settings.server_profiles = profiles_json  # never a key: those are in the keyring
        save_settings(self.settings)

    def connect_server(self, profile: ServerProfile) -> None:
        """Complete on ``profile``'s server from now on (chosen in the model dialog)."""
        self.status.set_state("loading", f"connecting to {profile.host}")
        self.session.set_model_ready(False)
        self._show_editor()
        self.client.connect_server(profile)

    def _on_server_connected(self, remote: RemoteDescription, seconds: float) -> None:
        self.remote, self.model_info = remote, None  # the local model was freed
        self.status.set_remote(remote)
        self.status.set_state("idle", f"connected in {seconds:.1f} s")
        self.status.set_context(0, remote.n_ctx)
        self.session.set_model_ready(True)

    def _on_gpu_layers_chosen(self, n_gpu_layers: int) -> None:
        self.settings.n_gpu_layers = n_gpu_layers
        save_settings(self.settings)

    # ------------------------------------------------------------- loading
    def _on_offload_planned(self, plan: OffloadPlan | None) -> None:
        """The worker turned the GPU-layers setting into a plan for the file (None: CPU)."""
        self._offload = plan

    def load_model(self, path: str) -> None:
        self._offload = None
        config = EngineConfig(n_ctx=self.settings.n_ctx, n_threads=self.settings.threads or None,
                              reuse=ReuseMode(self.settings.cache_reuse),
                              clamp_to_trained=True)  # a preference for every model: lowered with a note
        self.status.set_state("loading", Path(path).name)
        self.session.set_model_ready(False)
        self._show_editor()
        if not self.interactive:
            self.client.load_model(path, config, self.settings.n_gpu_layers)
            return
        self._load_dialog = QProgressDialog(f"Loading {Path(path).name}…", "Cancel", 0, 100, self._window)
        self._load_dialog.setWindowTitle("Loading model")
        self._load_dialog.setMinimumDuration(400)
        self._load_dialog.setAutoClose(True)
        self._load_dialog.canceled.connect(self.client.cancel_load)
        self.client.load_model(path, config, self.settings.n_gpu_layers)

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
        self.model_info, self.remote = info, None
        self.status.set_remote(None)
        self.settings.last_model = str(info.path)
        self.status.set_model(info)
        if self._offload is not None:
            self.status.set_placement(self._offload.placement(), self._offload.reason)
        else:
            self.status.set_placement("CPU")
        self.status.set_state("idle", f"loaded in {seconds:.1f} s")
        self.status.set_context(0, self.settings.n_ctx)
        self.loaded.emit(info)
        # No completion here: a model finishing its load is not an edit. The next keystroke,
        # caret request or Ctrl+Space asks; idle time prefills the prompt at the caret.
        self.session.set_model_ready(True)

    def _on_model_failed(self, message: str) -> None:
        self._close_load_dialog()
        ready = self.model_info is not None or self.remote is not None  # the old engine stays in use
        self.status.set_state("idle" if ready else "error")
        self.session.set_model_ready(ready)
        if not self.closing and self.interactive:
            QMessageBox.warning(self._window, "Could not load the model", message)

    def close(self) -> None:
        self.closing = True
        if self.compare_window is not None:
            self.compare_window.close()
