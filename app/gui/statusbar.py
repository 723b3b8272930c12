"""The status bar: what the engine did on the last request, not what a UI timer guessed."""

from __future__ import annotations

import psutil
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget

from app.core.engine import CompletionStats
from app.core.model_info import ModelInfo
from app.core.remote.base import RemoteDescription
from app.core.units import format_bytes

STATES = ("no model", "loading", "thinking", "streaming", "idle", "error")


class StatusPanel(QStatusBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state_label = QLabel("no model")
        self.model_label = QLabel("")
        #: Where the model runs: "CPU" or "GPU 28/30 layers" (app.core.offload.OffloadPlan.placement).
        self.placement_label = QLabel("")
        self.speed_label = QLabel("")
        self.ttft_label = QLabel("")
        self.reuse_label = QLabel("")
        self.context_label = QLabel("")
        self.context_bar = QProgressBar()
        self.context_bar.setFixedWidth(110)
        self.context_bar.setTextVisible(False)
        self.context_bar.setMaximumHeight(12)
        self.memory_label = QLabel("")
        #: "Remote: host · model" while a server completes: the code leaves the machine, said plainly.
        self.remote_label = QLabel("")
        self.remote_label.setVisible(False)
        #: The open file's encoding and line endings, e.g. "UTF-8 · CRLF"; empty for a new file.
        self.format_label = QLabel("")
        for widget in (self.state_label, self.remote_label, self.model_label, self.placement_label, self.speed_label,
                       self.ttft_label, self.reuse_label):
            self.addWidget(widget)
        for permanent in (self.format_label, self.context_label, self.context_bar, self.memory_label):
            self.addPermanentWidget(permanent)
        try:
            self._process: psutil.Process | None = psutil.Process()
        except (psutil.Error, OSError):  # e.g. no /proc in a container: show no RSS rather than fail
            self._process = None
        self._memory_timer = QTimer(self)
        self._memory_timer.timeout.connect(self.refresh_memory)
        self._memory_timer.start(2000)
        self.set_context(0, 0)
        self.refresh_memory()

    def set_state(self, state: str, detail: str = "") -> None:
        self.state_label.setText(f"● {state}" + (f" {detail}" if detail else ""))
        colours = {
            "idle": "#2da44e", "streaming": "#0969da", "thinking": "#bf8700", "loading": "#bf8700", "error": "#cf222e"
        }
        self.state_label.setStyleSheet(f"color: {colours.get(state, '#6e7781')};")

    def set_model(self, info: ModelInfo | None) -> None:
        if info is None:
            self.model_label.setText("")
            return
        mode = " · prefix-only" if info.prefix_only else ""
        self.model_label.setText(f"{info.name} · {info.file_type}{mode}")
        self.model_label.setToolTip("\n".join([str(info.path), info.mode_description, *info.notes]))

    def set_remote(self, remote: RemoteDescription | None) -> None:
        """Say plainly which server gets the code (None: the local model, nothing leaves)."""
        if remote is None:
            self.remote_label.setText("")
            self.remote_label.setToolTip("")
            self.remote_label.setVisible(False)
            return
        self.remote_label.setText(remote.label)
        where = "this machine (loopback)" if remote.is_loopback else f"the server {remote.host}"
        self.remote_label.setToolTip(f"Completions come from {remote.kind.label} at {remote.host}: the code around "
                                     f"the caret is sent to {where}. Context {remote.n_ctx:,} tokens.")
        self.remote_label.setStyleSheet("color: #bf8700; font-weight: bold;")
        self.remote_label.setVisible(True)
        self.model_label.setText("")
        self.set_placement("")

    def set_placement(self, placement: str, details: str = "") -> None:
        """Where the loaded model runs ("CPU", "GPU 28/30 layers"); empty without a model."""
        self.placement_label.setText(placement)
        self.placement_label.setToolTip(details)

    def show_stats(self, stats: CompletionStats) -> None:
        """Numbers straight from the engine's stats for the last request."""
        self.speed_label.setText(f"prompt {stats.prompt_tps:,.0f} tok/s · gen {stats.gen_tps:,.1f} tok/s")
        self.ttft_label.setText(f"first token {stats.ttft_ms:,.0f} ms")
        self.reuse_label.setText(self._reuse_text(stats))
        self.reuse_label.setToolTip(self._reuse_details(stats))
        self.set_context(stats.ctx_used, stats.ctx_size)

    def show_prefill(self, stats: CompletionStats, cancelled: bool) -> None:
        """Idle-time prefill: what is now ready in the KV cache for the next request."""
        what = "prefill stopped" if cancelled else "prefilled"
        self.reuse_label.setText(f"{what}: {self._reuse_text(stats)}")
        self.reuse_label.setToolTip(self._reuse_details(stats))
        self.set_context(stats.ctx_used, stats.ctx_size)

    @staticmethod
    def _reuse_text(stats: CompletionStats) -> str:
        text = f"reused {stats.cached_tokens:,}/{stats.prompt_tokens:,}"
        extras = [f"{n:,} {label}" for n, label in ((stats.reused_shifted, "shifted"), (stats.restored, "restored"))
                  if n]
        return text + (f" ({', '.join(extras)})" if extras else "")

    @staticmethod
    def _reuse_details(stats: CompletionStats) -> str:
        return (
            f"prompt: {stats.prompt_tokens:,} tokens\n"
            f"reused in place: {stats.reused_exact:,}\n"
            f"reused after shifting: {stats.reused_shifted:,}\n"
            f"restored from the file's snapshot: {stats.restored:,}\n"
            f"evaluated: {stats.evaluated:,}"
        )

    def set_context(self, used: int, size: int) -> None:
        self.context_label.setText(f"{used:,} / {size:,}" if size else "— / —")
        self.context_bar.setMaximum(max(1, size))
        self.context_bar.setValue(min(used, size))
        ratio = used / size if size else 0.0
        colour = "#cf222e" if ratio > 0.9 else "#bf8700" if ratio > 0.75 else "#2da44e"
        self.context_bar.setStyleSheet(f"QProgressBar::chunk {{ background: {colour}; }}")
        self.context_bar.setToolTip(f"context used: {used:,} of {size:,} tokens ({ratio:.0%})")

    def set_file_format(self, label: str, details: str = "") -> None:
        """Show how the file is stored on disk; ``details`` (e.g. a mixed-endings note) as tooltip."""
        self.format_label.setText(label)
        self.format_label.setToolTip(details or (f"Saved as {label}" if label else ""))

    def refresh_memory(self) -> None:
        if self._process is None:
            self.memory_label.setText("RSS —")
            return
        try:
            self.memory_label.setText(f"RSS {format_bytes(self._process.memory_info().rss)}")
        except (psutil.Error, OSError):
            self.memory_label.setText("RSS —")
