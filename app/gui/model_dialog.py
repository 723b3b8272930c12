"""The model manager: what fits this machine, how fast it will run, get it, load it.

Memory figures, the machine check's speed numbers, the catalog and the download folder
are injected so tests (and a "what if I had 8 GB" look) can drive the dialog without
touching the real machine. Network traffic happens only when the user presses Download
or Refresh; the speed check (about 20 s of llama.cpp on this machine's cores) only when
the user presses Check speed, on a thread of its own.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, QUrl, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.catalog import CatalogEntry, builtin_catalog, with_hub_metadata
from app.core.download import DownloadError, HubDownloader, Progress
from app.core.engine import CancelToken
from app.core.errors import CancelledError, ModelFileError, StarpadError
from app.core.local_models import LocalModel, find_local_models, user_models_dir
from app.core.machine_check import MachineSpeed, load_cached, run_machine_check
from app.core.memory_fit import FitReport, MemoryInfo, detect_memory, fit_report
from app.core.offload import ALL, AUTO, describe_gpu_layers
from app.core.remote.errors import RemoteConfigError
from app.core.remote.keys import KeyStore
from app.core.remote.profile import (
    DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S, MIN_TIMEOUT_S, ServerKind, ServerProfile, profiles_to_json,
)
from app.core.speed import SpeedTarget
from app.core.model_info import model_info
from app.core.units import format_bytes

log = logging.getLogger("starpad.models")

CONTEXT_CHOICES = (4096, 8192, 16384)
VERDICT_TEXT = {"fits": "fits", "tight": "tight", "too_large": "too large"}
VERDICT_COLOUR = {"fits": "#2da44e", "tight": "#bf8700", "too_large": "#cf222e"}
COLUMNS = ("Model", "Quant", "Bits/weight", "File", "Needs", "Verdict", "Speed here", "On disk")
VERDICT_COLUMN = 5
SPEED_COLUMN = 6
ON_DISK_COLUMN = 7
GPU_LAYER_CHOICES = ((AUTO, "GPU layers: auto"), (0, "GPU layers: 0 (CPU only)"), (ALL, "GPU layers: all"))


class SpeedCheckWorker(QObject):
    """The machine check off the GUI thread: it keeps both cores busy for ~20 s."""

    progress = Signal(str, float)
    finished = Signal(object)  # MachineSpeed
    failed = Signal(str)

    @Slot(int)
    def run(self, threads: int) -> None:
        try:
            speed = run_machine_check(threads, progress=self.progress.emit)
        except Exception as exc:  # noqa: BLE001 - a failed check must not take the window down
            log.exception("machine check failed")
            self.failed.emit(f"the speed check failed: {exc}")
            return
        self.finished.emit(speed)


class DownloadWorker(QObject):
    """Network work off the GUI thread: downloads and catalog refreshes."""

    progress = Signal(object)  # Progress
    finished = Signal(str)
    failed = Signal(str)
    refreshed = Signal(object)  # {repo: [(path, size, sha256)]}

    def __init__(self, downloader: HubDownloader) -> None:
        super().__init__()
        self._downloader = downloader

    @Slot(str, str, object)
    def download(self, repo_id: str, filename: str, cancel: CancelToken) -> None:
        try:
            path = self._downloader.download(repo_id, filename, progress=self.progress.emit, cancel=cancel)
        except CancelledError as exc:
            self.failed.emit(str(exc))
            return
        except StarpadError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - never take the window down
            log.exception("download failed")
            self.failed.emit(f"unexpected error: {exc}")
            return
        self.finished.emit(str(path))

    @Slot(object)
    def refresh(self, repos: list[str]) -> None:
        listing: dict[str, list[tuple[str, int, str | None]]] = {}
        for repo in repos:
            try:
                listing[repo] = self._downloader.list_files(repo)
            except DownloadError as exc:
                self.failed.emit(str(exc))
                return
        self.refreshed.emit(listing)


class ModelDialog(QDialog):
    """Pick, download, import and load models, guided by this machine's memory."""

    #: (model path, context size chosen in the dialog): the load must use both.
    load_requested = Signal(str, int)
    download_dir_changed = Signal(str)  # "" means the Hugging Face cache
    #: The GPU-layers choice (offload.AUTO, 0, N, offload.ALL): the window stores it.
    gpu_layers_changed = Signal(int)
    #: A server profile (with its key) chosen in the Servers tab: complete there from now on.
    server_requested = Signal(object)
    #: The server profiles' settings JSON (never a key) after a change.
    profiles_changed = Signal(str)
    _download_requested = Signal(str, str, object)
    _check_requested = Signal(int)
    _refresh_requested = Signal(object)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        memory: MemoryInfo | None = None,
        catalog: list[CatalogEntry] | None = None,
        downloader: HubDownloader | None = None,
        n_ctx: int = 16384,
        speed: MachineSpeed | None = None,
        target: SpeedTarget | None = None,
        n_gpu_layers: int = AUTO,
        threads: int | None = None,
        profiles: list[ServerProfile] | None = None,
        keys: KeyStore | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(980, 560)
        self.memory = memory or detect_memory()
        self.catalog = catalog or builtin_catalog()
        self.downloader = downloader or HubDownloader()
        from app.core.engine import default_threads

        self.threads = threads or default_threads()
        #: None until the machine was checked (cached from an earlier run, or Check speed).
        self.speed = speed if speed is not None else load_cached(self.threads)
        self.target = target or SpeedTarget()
        self.report: FitReport | None = None
        self._local: dict[tuple[str | None, str], LocalModel] = {}
        self._cancel: CancelToken | None = None

        self.memory_label = QLabel()
        self.context_box = QComboBox()
        for n in CONTEXT_CHOICES:
            self.context_box.addItem(f"{n // 1024}K context", n)
        self.context_box.setCurrentIndex(max(0, self.context_box.findData(n_ctx)))
        self.gpu_box = QComboBox()
        for value, text in GPU_LAYER_CHOICES:
            self.gpu_box.addItem(text, value)
        if self.gpu_box.findData(n_gpu_layers) < 0:
            self.gpu_box.addItem(f"GPU layers: {describe_gpu_layers(n_gpu_layers)}", n_gpu_layers)
        self.gpu_box.setCurrentIndex(self.gpu_box.findData(n_gpu_layers))
        self.gpu_box.setToolTip("Layers llama.cpp offloads to the GPU; auto: as many as fit in its free memory")
        self.check_button = QPushButton("Check speed")
        self.check_button.setToolTip("Measure this machine's memory bandwidth and llama.cpp's kernels (~20 s)")
        self.recommend_label = QLabel()
        self.recommend_label.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.progress_label = QLabel()
        self.download_button = QPushButton("Download")
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.setVisible(False)
        self.load_button = QPushButton("Load")
        self.load_button.setDefault(True)
        self.import_button = QPushButton("Import GGUF…")
        self.delete_button = QPushButton("Delete")
        self.reveal_button = QPushButton("Show in folder")
        self.folder_button = QPushButton("Download folder…")
        self.folder_button.setToolTip(f"Now: {self.downloader.cache_dir}")
        self.refresh_button = QPushButton("Refresh from Hub")
        self.refresh_button.setToolTip("Fetch exact sizes and sha256 digests (the only time this dialog goes online)")

        top = QHBoxLayout()
        top.addWidget(self.memory_label, 1)
        top.addWidget(self.gpu_box)
        top.addWidget(self.context_box)
        top.addWidget(self.check_button)
        buttons = QHBoxLayout()
        file_buttons = (
            self.import_button, self.folder_button, self.refresh_button, self.reveal_button, self.delete_button
        )
        for button in file_buttons:
            buttons.addWidget(button)
        buttons.addStretch(1)
        for button in (self.cancel_button, self.download_button, self.load_button):
            buttons.addWidget(button)
        local = QWidget()
        layout = QVBoxLayout(local)
        layout.addLayout(top)
        layout.addWidget(self.recommend_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.progress_label)
        layout.addLayout(buttons)
        self.servers = ServersPanel(profiles, keys, self)
        self.servers.connect_requested.connect(self._on_server_chosen)
        self.servers.profiles_changed.connect(self.profiles_changed)
        self.tabs = QTabWidget()
        self.tabs.addTab(local, "This machine")
        self.tabs.addTab(self.servers, "Servers")
        QVBoxLayout(self).addWidget(self.tabs)

        self._thread = QThread()
        self._thread.setObjectName("starpad-download")
        self.worker = DownloadWorker(self.downloader)
        self.worker.moveToThread(self._thread)
        self._download_requested.connect(self.worker.download)
        self._refresh_requested.connect(self.worker.refresh)
        self.worker.progress.connect(self._on_progress)
        self.worker.finished.connect(self._on_downloaded)
        self.worker.failed.connect(self._on_failed)
        self.worker.refreshed.connect(self._on_refreshed)

        self._check_thread = QThread()
        self._check_thread.setObjectName("starpad-speed-check")
        self.check_worker = SpeedCheckWorker()
        self.check_worker.moveToThread(self._check_thread)
        self._check_requested.connect(self.check_worker.run)
        self.check_worker.progress.connect(self._on_check_progress)
        self.check_worker.finished.connect(self._on_checked)
        self.check_worker.failed.connect(self._on_check_failed)
        self.check_button.clicked.connect(self.check_speed)
        self.gpu_box.currentIndexChanged.connect(self._on_gpu_layers_changed)

        self.context_box.currentIndexChanged.connect(lambda _i: self.refresh_table())
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _item: self.load_selected())
        self.download_button.clicked.connect(self.download_selected)
        self.cancel_button.clicked.connect(self.cancel_download)
        self.load_button.clicked.connect(self.load_selected)
        self.import_button.clicked.connect(self.import_dialog)
        self.delete_button.clicked.connect(self.delete_selected)
        self.reveal_button.clicked.connect(self.reveal_selected)
        self.refresh_button.clicked.connect(self.refresh_from_hub)
        self.folder_button.clicked.connect(self.choose_folder)
        self.refresh_table()

    def _on_server_chosen(self, profile: ServerProfile) -> None:
        self.server_requested.emit(profile)
        self.accept()

    # ------------------------------------------------------------- table
    @property
    def n_ctx(self) -> int:
        return int(self.context_box.currentData())

    @property
    def n_gpu_layers(self) -> int:
        return int(self.gpu_box.currentData())

    def _on_gpu_layers_changed(self, _index: int) -> None:
        self.gpu_layers_changed.emit(self.n_gpu_layers)
        self.refresh_table()

    # ------------------------------------------------------------- speed check
    def check_speed(self) -> None:
        """Run the machine check now (a button, never automatically: it loads both cores)."""
        if self._check_thread.isRunning() and not self.check_button.isEnabled():
            return
        self.check_button.setEnabled(False)
        self.progress_label.setText("Checking this machine's speed…")
        if not self._check_thread.isRunning():
            self._check_thread.start()
        self._check_requested.emit(self.threads)

    def _on_check_progress(self, what: str, fraction: float) -> None:
        self.progress_label.setText(f"Checking this machine's speed: {what} ({fraction:.0%})")

    def _on_checked(self, speed: MachineSpeed) -> None:
        self.check_button.setEnabled(True)
        self.set_speed(speed)
        self.progress_label.setText(
            f"Speed checked in {speed.seconds:.0f} s: {speed.bandwidth_bytes_per_s / 1e9:.1f} GB/s memory read, "
            f"{len(speed.kernels)} tensor types timed on {speed.threads} threads."
        )

    def _on_check_failed(self, message: str) -> None:
        self.check_button.setEnabled(True)
        self.progress_label.setText(message)

    def set_speed(self, speed: MachineSpeed | None) -> None:
        """New machine-check numbers (or none): predictions and recommendation follow."""
        self.speed = speed
        self.refresh_table()

    def _scan_local(self) -> None:
        extra = (self.downloader.cache_dir,) if self.downloader.cache_dir.is_dir() else ()
        self._local = {}
        for model in find_local_models(extra):
            self._local[(model.repo_id, model.path.name)] = model
            self._local.setdefault((None, model.path.name), model)

    def local_path(self, entry: CatalogEntry) -> Path | None:
        found = self._local.get((entry.repo_id, entry.filename)) or self._local.get((None, entry.filename))
        return found.path if found else None

    def refresh_table(self) -> None:
        self._scan_local()
        m = self.memory
        gpus = "; ".join(f"{g.name} {format_bytes(g.total_bytes)}" for g in m.gpus) or "no GPU"
        shared = " (shared with the GPU)" if m.unified else ""
        self.memory_label.setText(
            f"<b>RAM</b> {format_bytes(m.total_bytes)} total, "
            f"{format_bytes(m.available_bytes)} available{shared} · {gpus}"
        )
        self.report = fit_report(self.catalog, m, self.n_ctx, speed=self.speed, target=self.target,
                                 n_gpu_layers=self.n_gpu_layers)
        rec = self.report.recommended
        unchecked = "" if self.speed else " Speed not checked yet: press <i>Check speed</i> (about 20 s)."
        self.recommend_label.setText(
            f"Recommended for {self.n_ctx // 1024}K context: <b>{rec.family} {rec.quant}</b>. "
            f"{self.report.reason}{unchecked}"
            if rec else self.report.reason
        )
        selected = self.selected_entry()
        self.table.setRowCount(len(self.report.rows))
        for row_index, row in enumerate(self.report.rows):
            e, need = row.entry, row.need
            on_disk = self.local_path(e)
            approx = "" if e.size_exact else "≈ "
            speed_text = row.speed.summary(self.target.prompt_tokens) if row.speed else "not checked"
            if row.offload is not None and row.offload.on_gpu:
                speed_text += f" · {row.offload.placement()}"
            cells = (
                e.family + ("  ★ recommended" if e == rec else ""),
                e.quant,
                f"{e.bits_per_weight:.2f}",
                approx + format_bytes(e.size_bytes),
                format_bytes(need.total_bytes),
                VERDICT_TEXT[row.verdict],
                speed_text,
                "downloaded" if on_disk else "",
            )
            tip = (
                f"{e.repo_id}/{e.filename}\n"
                f"weights {format_bytes(need.weights_bytes)} + KV cache {format_bytes(need.kv_bytes)} "
                f"({self.n_ctx:,} tokens) + compute {format_bytes(need.compute_bytes)} "
                f"+ app {format_bytes(need.overhead_bytes)}"
                f" = {format_bytes(need.total_bytes)}\navailable: {format_bytes(m.available_bytes)}"
                + (f"\non the GPU: {format_bytes(need.gpu_bytes)} ({row.offload.placement()})"
                   if row.offload is not None and row.offload.on_gpu else "")
                + ("" if e.size_exact else "\nfile size estimated; Refresh from Hub for the exact size and sha256")
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                item.setData(Qt.ItemDataRole.UserRole, row_index)
                if col == VERDICT_COLUMN:
                    item.setForeground(QBrush(QColor(VERDICT_COLOUR[row.verdict])))
                if col == SPEED_COLUMN and row.meets_target is not None:
                    item.setForeground(QBrush(QColor(VERDICT_COLOUR["fits" if row.meets_target else "tight"])))
                if e == rec:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(row_index, col, item)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        target = selected or rec
        if target is not None:
            for row_index, row in enumerate(self.report.rows):
                if row.entry == target:
                    self.table.selectRow(row_index)
        self._update_buttons()

    def selected_row_index(self) -> int | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return rows[0].row() if rows else None

    def selected_entry(self) -> CatalogEntry | None:
        index = self.selected_row_index()
        if index is None or self.report is None or index >= len(self.report.rows):
            return None
        return self.report.rows[index].entry

    def verdict_of(self, entry: CatalogEntry) -> str:
        assert self.report is not None
        return next(r.verdict for r in self.report.rows if r.entry == entry)

    def _update_buttons(self) -> None:
        entry = self.selected_entry()
        local = self.local_path(entry) if entry else None
        busy = self._cancel is not None
        self.download_button.setEnabled(entry is not None and local is None and not busy)
        self.load_button.setEnabled(local is not None)
        self.delete_button.setEnabled(local is not None and not busy)
        self.reveal_button.setEnabled(local is not None)

    # ------------------------------------------------------------ actions
    def load_selected(self) -> None:
        entry = self.selected_entry()
        path = self.local_path(entry) if entry else None
        if entry is None or path is None:
            return
        verdict = self.verdict_of(entry)
        if verdict != "fits":
            answer = QMessageBox.question(
                self,
                "Load anyway?",
                f"{entry.family} {entry.quant} is {VERDICT_TEXT[verdict]} for this machine at "
                f"{self.n_ctx // 1024}K context: the system may swap or the load may fail. Load it anyway?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.load_requested.emit(str(path), self.n_ctx)
        self.accept()

    def download_selected(self) -> None:
        entry = self.selected_entry()
        if entry is None or self._cancel is not None:
            return
        self._cancel = CancelToken()
        self.progress.setVisible(True)
        self.progress.setValue(0)
        self.progress_label.setText(f"Connecting for {entry.filename}…")
        self.cancel_button.setVisible(True)
        self._update_buttons()
        self._ensure_thread()
        self._download_requested.emit(entry.repo_id, entry.filename, self._cancel)

    def cancel_download(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    def _end_download(self) -> None:
        self._cancel = None
        self.cancel_button.setVisible(False)
        self._update_buttons()

    def _on_progress(self, p: Progress) -> None:
        self.progress.setValue(int(p.fraction * 1000))
        self.progress.setMaximum(1000)
        eta = f" · {p.eta_seconds:,.0f} s left" if p.eta_seconds is not None else ""
        self.progress_label.setText(
            f"{format_bytes(p.downloaded)} of {format_bytes(p.total)} · {format_bytes(p.bytes_per_second)}/s{eta}"
        )

    def _on_downloaded(self, path: str) -> None:
        self._end_download()
        self.progress.setValue(self.progress.maximum())
        self.progress_label.setText(f"Downloaded and verified: {path}")
        self.refresh_table()

    def _on_failed(self, message: str) -> None:
        self._end_download()
        self.progress.setVisible(False)
        self.progress_label.setText(message)

    def refresh_from_hub(self) -> None:
        repos = sorted({e.repo_id for e in self.catalog})
        self.progress_label.setText("Asking the Hub for exact sizes and sha256…")
        self._ensure_thread()
        self._refresh_requested.emit(repos)

    def _on_refreshed(self, listing: dict[str, list[tuple[str, int, str | None]]]) -> None:
        updated = []
        for entry in self.catalog:
            match = next((f for f in listing.get(entry.repo_id, []) if f[0] == entry.filename), None)
            updated.append(with_hub_metadata(entry, match[1], match[2]) if match else entry)
        self.catalog = updated
        self.progress_label.setText("Catalog refreshed from the Hub.")
        self.refresh_table()

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Download models to", str(self.downloader.cache_dir))
        if folder:
            self.set_download_dir(Path(folder))

    def set_download_dir(self, folder: Path | None) -> None:
        """Download into ``folder`` (HF cache layout inside it), or the HF cache for None."""
        from app.core.download import hf_cache_dir

        self.downloader.cache_dir = folder or hf_cache_dir()
        self.folder_button.setToolTip(f"Now: {self.downloader.cache_dir}")
        self.download_dir_changed.emit(str(folder) if folder else "")
        self.refresh_table()

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a GGUF model", str(Path.home()), "GGUF models (*.gguf)")
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> Path | None:
        """Validate a local GGUF and make it appear in the list (a link, not a 2 GB copy)."""
        try:
            info = model_info(path)
        except ModelFileError as exc:
            QMessageBox.warning(self, "Not a usable model", str(exc))
            return None
        target_dir = user_models_dir()
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / path.name
        if not target.exists():
            try:
                target.symlink_to(path.resolve())
            except OSError:
                shutil.copy2(path, target)
        self.progress_label.setText(f"Imported {info.name} ({info.file_type}, {format_bytes(info.size_bytes)}).")
        self.refresh_table()
        return target

    def delete_selected(self) -> None:
        entry = self.selected_entry()
        path = self.local_path(entry) if entry else None
        if path is None:
            return
        size = format_bytes(path.stat().st_size)
        answer = QMessageBox.question(self, "Delete model", f"Delete {path.name} ({size})?")
        if answer != QMessageBox.StandardButton.Yes:
            return
        real = path.resolve()
        path.unlink(missing_ok=True)
        if real != path and real.is_file() and self.downloader.cache_dir in real.parents:
            real.unlink()  # the cache blob behind the snapshot link
        self.refresh_table()

    def reveal_selected(self) -> None:
        entry = self.selected_entry()
        path = self.local_path(entry) if entry else None
        if path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))

    def _ensure_thread(self) -> None:
        """The network thread runs only once the user asks for network work."""
        if not self._thread.isRunning():
            self._thread.start()

    def stop_worker(self) -> None:
        """Cancel a running download (its partial stays resumable) and stop the thread."""
        self.cancel_download()
        self._thread.quit()
        self._thread.wait(10_000)
        self._check_thread.quit()  # a running check finishes first (it cannot be interrupted mid-kernel)
        self._check_thread.wait(60_000)

    def done(self, result: int) -> None:
        """Accept, reject and the window's close button all end here."""
        self.stop_worker()
        super().done(result)


class ServersPanel(QWidget):
    """Remote server profiles: name, URL, kind, model, key, CA bundle, timeout.

    Nothing here touches the network until Connect; the window then uses the server for
    every completion (and the status bar says so). Keys go to the system keyring through
    ``KeyStore``, never into the settings; where there is no keyring the panel says the key
    is kept for this session only.
    """

    #: A profile (with its key) to complete on from now on.
    connect_requested = Signal(object)
    #: The profiles' settings JSON (no keys) after a save or delete.
    profiles_changed = Signal(str)

    def __init__(
        self,
        profiles: list[ServerProfile] | None = None,
        keys: KeyStore | None = None,
        parent: QWidget | None = None,
        confirm: Callable[[str, str], bool] | None = None,
    ) -> None:
        super().__init__(parent)
        self.profiles: list[ServerProfile] = list(profiles or [])
        self.keys = keys or KeyStore()
        #: Asks the person (title, text) -> yes; injectable for tests.
        self.confirm = confirm or self._ask
        self.list = QListWidget()
        self.name_edit = QLineEdit()
        self.url_edit = QLineEdit()
        self.url_edit.setPlaceholderText("http://gpu-box:8080")
        self.kind_box = QComboBox()
        for kind in ServerKind:
            self.kind_box.addItem(kind.label, kind.value)
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("the server's first model")
        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("none")
        self.ca_edit = QLineEdit()
        self.ca_edit.setPlaceholderText("the system's certificate authorities")
        self.ca_button = QPushButton("Browse…")
        self.timeout_box = QDoubleSpinBox()
        self.timeout_box.setRange(MIN_TIMEOUT_S, MAX_TIMEOUT_S)
        self.timeout_box.setSuffix(" s")
        self.timeout_box.setValue(DEFAULT_TIMEOUT_S)
        self.new_button = QPushButton("New")
        self.save_button = QPushButton("Save")
        self.delete_button = QPushButton("Delete")
        self.connect_button = QPushButton("Connect")
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        note = ("Completions from a server send the code around the caret to it. Starpad sends nothing anywhere "
                "until you connect to a profile here.")
        if self.keys.problem:
            note += f"\nAPI keys: {self.keys.problem}."
        self.note_label = QLabel(note)
        self.note_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("URL", self.url_edit)
        form.addRow("Kind", self.kind_box)
        form.addRow("Model", self.model_edit)
        form.addRow("API key", self.key_edit)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_edit, 1)
        ca_row.addWidget(self.ca_button)
        form.addRow("CA bundle", ca_row)
        form.addRow("Timeout", self.timeout_box)
        buttons = QHBoxLayout()
        for button in (self.new_button, self.save_button, self.delete_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.connect_button)
        right = QVBoxLayout()
        right.addLayout(form)
        right.addWidget(self.message_label)
        right.addStretch(1)
        right.addLayout(buttons)
        row = QHBoxLayout()
        row.addWidget(self.list, 1)
        row.addLayout(right, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note_label)
        layout.addLayout(row, 1)

        self.list.currentRowChanged.connect(self._show_profile)
        self.new_button.clicked.connect(self.new_profile)
        self.save_button.clicked.connect(self.save_profile)
        self.delete_button.clicked.connect(self.delete_profile)
        self.connect_button.clicked.connect(self.connect_profile)
        self.ca_button.clicked.connect(self._browse_ca)
        self._refresh_list()

    # ------------------------------------------------------------ profiles
    def _refresh_list(self, select: str | None = None) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for profile in self.profiles:
            self.list.addItem(f"{profile.name} — {profile.host}")
        self.list.blockSignals(False)
        names = [p.name for p in self.profiles]
        row = names.index(select) if select in names else (0 if names else -1)
        self.list.setCurrentRow(row)
        self._show_profile(row)

    def _show_profile(self, row: int) -> None:
        profile = self.profiles[row] if 0 <= row < len(self.profiles) else None
        self.name_edit.setText(profile.name if profile else "")
        self.url_edit.setText(profile.url if profile else "")
        self.kind_box.setCurrentIndex(max(0, self.kind_box.findData((profile.kind if profile else
                                                                      ServerKind.LLAMA_SERVER).value)))
        self.model_edit.setText(profile.model or "" if profile else "")
        self.key_edit.setText((self.keys.get(profile.name) or "") if profile else "")
        self.ca_edit.setText(profile.ca_bundle or "" if profile else "")
        self.timeout_box.setValue(profile.timeout_s if profile else DEFAULT_TIMEOUT_S)
        self.delete_button.setEnabled(profile is not None)

    def form_profile(self) -> ServerProfile:
        """The profile the form describes (with its key); raises ``RemoteConfigError``."""
        ca = self.ca_edit.text().strip() or None
        if ca is not None and not Path(ca).is_file():
            raise RemoteConfigError(f"the CA bundle {ca} is not a file")
        return ServerProfile(
            name=self.name_edit.text().strip(), url=self.url_edit.text().strip(),
            kind=ServerKind(self.kind_box.currentData()), model=self.model_edit.text().strip() or None,
            ca_bundle=ca, timeout_s=float(self.timeout_box.value()), api_key=self.key_edit.text().strip() or None,
        ).validate()

    def new_profile(self) -> None:
        self.list.setCurrentRow(-1)
        self._show_profile(-1)
        self.name_edit.setText(f"Server {len(self.profiles) + 1}")
        self.name_edit.setFocus()

    def save_profile(self) -> ServerProfile | None:
        try:
            profile = self.form_profile()
        except RemoteConfigError as exc:
            self._say(str(exc), error=True)
            return None
        row = self.list.currentRow()
        old = self.profiles[row] if 0 <= row < len(self.profiles) else None
        clash = next((p for p in self.profiles if p.name == profile.name and p is not old), None)
        if clash is not None:
            self._say(f"a profile named {profile.name!r} exists already", error=True)
            return None
        if old is not None and old.name != profile.name:
            self.keys.delete(old.name)
        if old is not None:
            self.profiles[row] = profile.with_key(None)
        else:
            self.profiles.append(profile.with_key(None))
        problem = self.keys.set(profile.name, profile.api_key)
        self._refresh_list(select=profile.name)
        self._say(f"saved {profile.name}" + (f" ({problem})" if problem and profile.api_key else ""))
        self.profiles_changed.emit(profiles_to_json(self.profiles))
        return profile

    def delete_profile(self) -> None:
        row = self.list.currentRow()
        if not 0 <= row < len(self.profiles):
            return
        profile = self.profiles.pop(row)
        self.keys.delete(profile.name)
        self._refresh_list()
        self._say(f"deleted {profile.name}")
        self.profiles_changed.emit(profiles_to_json(self.profiles))

    def connect_profile(self) -> bool:
        """Use the form's profile; plain http:// to another machine needs a yes first."""
        try:
            profile = self.form_profile()
        except RemoteConfigError as exc:
            self._say(str(exc), error=True)
            return False
        if profile.needs_plain_http_confirmation and not self.confirm(
            "Unencrypted connection",
            f"{profile.host} is reached over plain http://: the code around the caret"
            + (" and the API key" if profile.api_key else "")
            + " travel unencrypted and can be read on the way. Connect anyway?",
        ):
            self._say("not connected: use https:// or confirm plain http://", error=True)
            return False
        self._say(f"connecting to {profile.host}…")
        self.connect_requested.emit(profile)
        return True

    def _say(self, text: str, error: bool = False) -> None:
        self.message_label.setText(text)
        self.message_label.setStyleSheet("color: #cf222e;" if error else "")

    def _browse_ca(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "CA bundle", str(Path.home()), "PEM files (*.pem *.crt);;All (*)")
        if path:
            self.ca_edit.setText(path)

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes
