"""The quant comparison window: same prompt, 2-4 quants, one screen."""

from __future__ import annotations

import difflib
import html
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTabWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.core.compare import MAX_MODELS, CompareSettings, ComparisonReport, compare_models
from app.core.engine import CancelToken
from app.core.errors import CancelledError, StarpadError
from app.core.local_models import find_local_models
from app.core.units import format_bytes
from app.gui.plotting import pg
from app.gui.quality_tab import QualityTab

log = logging.getLogger("starpad.compare")

METRICS = (
    ("File", lambda r: format_bytes(r.file_bytes)),
    ("Load", lambda r: f"{r.load_s:.2f} s"),
    ("Peak RSS", lambda r: format_bytes(r.peak_rss_bytes)),
    ("First token", lambda r: f"{r.ttft_ms:,.0f} ms"),
    ("Prompt tok/s", lambda r: f"{r.prompt_tps:,.1f}"),
    ("Gen tok/s", lambda r: f"{r.gen_tps:,.1f}"),
    ("Agreement", lambda r: f"{r.agreement:.1%}" if r.agreement is not None else "—"),
    ("Perplexity", lambda r: f"{r.perplexity:,.2f}" if r.perplexity is not None else "—"),
)


class CompareWorker(QObject):
    stage = Signal(int, str, str)
    finished = Signal(object)  # ComparisonReport
    failed = Signal(str)
    cancelled = Signal()

    @Slot(object, str, str, object, object)
    def run(self, models: list[Path], prefix: str, suffix: str, settings: CompareSettings, cancel: CancelToken) -> None:
        try:
            report = compare_models(models, prefix, suffix, settings, on_stage=self.stage.emit, cancel=cancel)
        except CancelledError:
            self.cancelled.emit()
            return
        except (StarpadError, ValueError) as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001
            log.exception("comparison failed")
            self.failed.emit(f"unexpected error: {exc}")
            return
        self.finished.emit(report)


def diff_html(reference: str, text: str) -> str:
    """``text`` with the parts that differ from ``reference`` highlighted."""
    out = []
    for op, _a0, _a1, b0, b1 in difflib.SequenceMatcher(None, reference, text, autojunk=False).get_opcodes():
        chunk = html.escape(text[b0:b1])
        out.append(chunk if op == "equal" else f'<span style="background:#ffd7d5;color:#1f2328">{chunk}</span>')
    return f'<pre style="white-space:pre-wrap;font-family:monospace">{"".join(out)}</pre>'


class CompareWindow(QWidget):
    running_changed = Signal(bool)
    _run_requested = Signal(object, str, str, object, object)

    def __init__(self, prefix: str = "", suffix: str = "", current_model: str | None = None,
                 parent: QWidget | None = None, n_gpu_layers: int = 0) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Compare quants")
        self.resize(1200, 760)
        #: The app's GPU-layers setting: every quant is loaded with it (decided per quant).
        self.n_gpu_layers = n_gpu_layers
        self.report: ComparisonReport | None = None
        self._cancel: CancelToken | None = None
        self._editor_prompt = (prefix, suffix)

        self.model_list = QListWidget()
        for model in find_local_models():
            self.add_model(model.path, checked=str(model.path) == current_model)
        if current_model and not self._find(current_model):
            self.add_model(Path(current_model), checked=True)
        self.add_button = QPushButton("Add GGUF…")
        self.source_box = QComboBox()
        self.source_box.addItem("Editor context at the caret", "editor")
        self.source_box.addItem("Pasted prefix and suffix", "pasted")
        self.prefix_edit = QPlainTextEdit(prefix)
        self.suffix_edit = QPlainTextEdit(suffix)
        hints = ((self.prefix_edit, "prefix (before the caret)"), (self.suffix_edit, "suffix (after the caret)"))
        for edit, hint in hints:
            edit.setPlaceholderText(hint)
            edit.setEnabled(False)
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.export_md = QPushButton("Export Markdown…")
        self.export_json = QPushButton("Export JSON…")
        for button in (self.export_md, self.export_json):
            button.setEnabled(False)
        self.status = QLabel("Pick 2 to 4 models and press Run. Quants run one after another, never at once.")

        self.table = QTableWidget(len(METRICS), 0)
        self.table.setVerticalHeaderLabels([m[0] for m in METRICS])
        self.outputs = QWidget()
        self.outputs_layout = QHBoxLayout(self.outputs)
        self.outputs_layout.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("bottom", "file size", units="B")
        self.plot.setLabel("left", "generation", units="tok/s")
        self.plot.setTitle("speed vs size (colour: agreement with the reference)")
        self.plot.showGrid(x=True, y=True, alpha=0.3)

        left = QVBoxLayout()
        left.addWidget(QLabel("<b>Models</b>"))
        left.addWidget(self.model_list, 1)
        left.addWidget(self.add_button)
        left.addWidget(QLabel("<b>Prompt</b>"))
        left.addWidget(self.source_box)
        left.addWidget(self.prefix_edit)
        left.addWidget(self.suffix_edit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        left.addLayout(buttons)
        exports = QHBoxLayout()
        exports.addWidget(self.export_md)
        exports.addWidget(self.export_json)
        left.addLayout(exports)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setMaximumWidth(340)

        right = QSplitter(Qt.Orientation.Vertical)
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.table)
        top.addWidget(self.plot)
        right.addWidget(top)
        right.addWidget(self.outputs)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        self._thread = QThread()
        self._thread.setObjectName("starpad-compare")
        # One thread for both tabs: a speed run and a quality run queue, never hold two models.
        self.quality = QualityTab(self._thread, self.selected_models, lambda: self._cancel is not None)
        self.quality.n_gpu_layers = n_gpu_layers
        self.quality.running_changed.connect(self._on_quality_running)
        self.tabs = QTabWidget()
        self.tabs.addTab(right, "Speed")
        self.tabs.addTab(self.quality, "Quality")
        layout = QGridLayout(self)
        layout.addWidget(left_widget, 0, 0)
        layout.addWidget(self.tabs, 0, 1)
        layout.addWidget(self.status, 1, 0, 1, 2)
        layout.setColumnStretch(1, 1)

        self.worker = CompareWorker()
        self.worker.moveToThread(self._thread)
        self._run_requested.connect(self.worker.run)
        self.worker.stage.connect(self._on_stage)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self._thread.start()

        self.add_button.clicked.connect(self._add_dialog)
        self.source_box.currentIndexChanged.connect(self._on_source_changed)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_md.clicked.connect(lambda: self._export("md"))
        self.export_json.clicked.connect(lambda: self._export("json"))

    # ------------------------------------------------------------- models
    def _find(self, path: str) -> QListWidgetItem | None:
        for i in range(self.model_list.count()):
            if self.model_list.item(i).data(Qt.ItemDataRole.UserRole) == path:
                return self.model_list.item(i)
        return None

    def add_model(self, path: Path, checked: bool = True) -> None:
        item = self._find(str(path))
        if item is None:
            item = QListWidgetItem(path.name)
            item.setToolTip(str(path))
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            self.model_list.addItem(item)
        item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    def _add_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add models", str(Path.home()), "GGUF models (*.gguf)")
        for path in paths:
            self.add_model(Path(path))

    def selected_models(self) -> list[Path]:
        return [
            Path(self.model_list.item(i).data(Qt.ItemDataRole.UserRole))
            for i in range(self.model_list.count())
            if self.model_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def _on_source_changed(self) -> None:
        pasted = self.source_box.currentData() == "pasted"
        self.prefix_edit.setEnabled(pasted)
        self.suffix_edit.setEnabled(pasted)
        if not pasted:
            self.prefix_edit.setPlainText(self._editor_prompt[0])
            self.suffix_edit.setPlainText(self._editor_prompt[1])

    # ---------------------------------------------------------------- run
    @property
    def running(self) -> bool:
        return self._cancel is not None or self.quality.running

    def _on_quality_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.running_changed.emit(running)
        if not running and self.quality.report is not None:
            self.export_md.setEnabled(True)
            self.export_json.setEnabled(True)

    def run(self, settings: CompareSettings | None = None) -> None:
        models = self.selected_models()
        if not 2 <= len(models) <= MAX_MODELS:
            self.status.setText(f"Pick 2 to {MAX_MODELS} models (now {len(models)}).")
            return
        if self.running:
            return
        self._cancel = CancelToken()
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.running_changed.emit(True)
        self.status.setText("Starting…")
        self._run_requested.emit(models, self.prefix_edit.toPlainText(), self.suffix_edit.toPlainText(),
                                 settings or self.default_settings(), self._cancel)

    def default_settings(self) -> CompareSettings:
        return CompareSettings(n_gpu_layers=self.n_gpu_layers)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()
            self.status.setText("Cancelling…")

    def _finish(self) -> None:
        self._cancel = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.running_changed.emit(False)

    def _on_stage(self, index: int, name: str, what: str) -> None:
        total = len(self.selected_models())
        self.status.setText(f"Running {index + 1} of {total}: {name} — {what}…")

    def _on_failed(self, message: str) -> None:
        self._finish()
        self.status.setText(f"Comparison failed: {message}")

    def _on_cancelled(self) -> None:
        self._finish()
        self.status.setText("Cancelled. Nothing was changed; press Run to start again.")

    def _on_finished(self, report: ComparisonReport) -> None:
        self._finish()
        self.report = report
        self.export_md.setEnabled(True)
        self.export_json.setEnabled(True)
        self.status.setText(f"Done. Reference: {Path(report.reference).name} (the highest precision).")
        self._show_table(report)
        self._show_outputs(report)
        self._show_chart(report)

    def _show_table(self, report: ComparisonReport) -> None:
        self.table.setColumnCount(len(report.results))
        self.table.setHorizontalHeaderLabels(
            [r.quant + (" (ref)" if r.model == report.reference else "") for r in report.results]
        )
        for row, (_name, fmt) in enumerate(METRICS):
            for col, result in enumerate(report.results):
                item = QTableWidgetItem(fmt(result))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                item.setToolTip(result.model)
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()

    def _show_outputs(self, report: ComparisonReport) -> None:
        while self.outputs_layout.count():
            item = self.outputs_layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        reference = next(r for r in report.results if r.model == report.reference)
        for result in report.results:
            box = QVBoxLayout()
            title = QLabel(f"<b>{result.quant}</b> · {Path(result.model).name}")
            view = QTextBrowser()
            view.setHtml(diff_html(reference.text, result.text))
            column = QWidget()
            box.addWidget(title)
            box.addWidget(view)
            box.setContentsMargins(0, 0, 0, 0)
            column.setLayout(box)
            self.outputs_layout.addWidget(column)

    def _show_chart(self, report: ComparisonReport) -> None:
        self.plot.clear()
        spots = []
        for result in report.results:
            agreement = result.agreement if result.agreement is not None else 0.0
            t = min(1.0, max(0.0, (agreement - 0.5) / 0.5))  # 50 % or less: red, 100 %: green
            colour = pg.mkColor(int(215 * (1 - t) + 30 * t), int(50 * (1 - t) + 164 * t), int(60 * (1 - t) + 78 * t))
            spots.append({"pos": (result.file_bytes, result.gen_tps), "size": 16, "brush": pg.mkBrush(colour),
                          "pen": pg.mkPen("k")})
            label = pg.TextItem(f"{result.quant}  {agreement:.0%}", color="k", anchor=(0, 1.2))
            label.setPos(result.file_bytes, result.gen_tps)
            self.plot.addItem(label)
        self.plot.addItem(pg.ScatterPlotItem(spots=spots))

    def _export(self, kind: str) -> None:
        if self.report is None and self.quality.report is None:
            return
        suffix = "Markdown (*.md)" if kind == "md" else "JSON (*.json)"
        path, _ = QFileDialog.getSaveFileName(self, "Export comparison", f"comparison.{kind}", suffix)
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> None:
        """The speed comparison and the quality scores, whichever ran, in one file."""
        import json

        quality = self.quality.report
        if path.suffix == ".md":
            parts = [self.report.to_markdown()] if self.report is not None else []
            if quality is not None:
                parts.append("## Quality (HumanEval-Infilling)\n\n" + quality.to_markdown())
            text = "\n\n".join(parts)
        else:
            data: dict[str, object] = self.report.to_json() if self.report is not None else {}
            if quality is not None:
                data["quality"] = {"subset": quality.subset.value, "selection": quality.selection,
                                   "notes": quality.notes, **quality.to_json()}
            text = json.dumps(data, indent=2)
        path.write_text(text, encoding="utf-8")
        self.status.setText(f"Exported {path}")

    def closeEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        self.cancel()
        self.quality.cancel()
        self._thread.quit()
        self._thread.wait(30_000)
        if self._cancel is not None:
            self._finish()
        if self.quality.running:
            self.quality._finish()
        super().closeEvent(event)
