"""The comparison window's Quality tab: HumanEval-Infilling pass@1 per quant.

Runs ``app.core.evaluation`` on a worker thread (the comparison's own, so a speed run and
a quality run never hold two models at once), shows pass@1 with its 95 % interval, charts
it against file size and generation speed, and lists the failing problems with the
completion next to the canonical solution.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.compare import MAX_MODELS
from app.core.engine import CancelToken
from app.core.errors import StarpadError
from app.core.evaluation.dataset import Selection, Subset, load_problems
from app.core.evaluation.runner import EvalSettings, EvaluationReport, ModelScore, Progress, evaluate_models
from app.gui.plotting import pg

log = logging.getLogger("starpad.evaluation")

COLUMNS = ("Quant", "pass@1", "95 % interval", "Exact match", "n", "First token", "Gen tok/s", "Time")
#: More failures than this are summarised, not listed (a 5,815-problem run of a weak quant).
MAX_LISTED_FAILURES = 2000
DEFAULT_SAMPLE = 40


class QualityWorker(QObject):
    progress = Signal(object)  # Progress
    finished = Signal(object)  # EvaluationReport (cancelled ones too: what finished is kept)
    failed = Signal(str)

    @Slot(object, object, object)
    def run(self, models: list[Path], settings: EvalSettings, cancel: CancelToken) -> None:
        try:
            report = evaluate_models(models, settings, on_progress=self.progress.emit, cancel=cancel)
        except (StarpadError, ValueError, OSError) as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the window must survive anything
            log.exception("quality run failed")
            self.failed.emit(f"unexpected error: {exc}")
            return
        self.finished.emit(report)


def score_row(score: ModelScore) -> list[str]:
    low, high = score.ci
    return [
        score.label + (" (prefix only)" if score.prefix_only else ""),
        f"{score.pass_at_1:.1%}",
        f"{low:.1%} – {high:.1%}",
        f"{score.exact_match:.1%}",
        f"{score.n:,}",
        f"{score.ttft_ms_mean:,.0f} ms" if score.ttft_ms_mean is not None else "—",
        f"{score.gen_tps_mean:,.1f}" if score.gen_tps_mean is not None else "—",
        f"{score.seconds:,.0f} s",
    ]


class QualityTab(QWidget):
    running_changed = Signal(bool)
    _run_requested = Signal(object, object, object)

    def __init__(self, thread: QThread, selected_models: Callable[[], list[Path]],
                 busy: Callable[[], bool], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: EvaluationReport | None = None
        self._cancel: CancelToken | None = None
        #: The app's GPU-layers setting (the comparison window sets it): decided per quant.
        self.n_gpu_layers = 0
        self._selected_models = selected_models
        self._busy = busy

        self.subset_box = QComboBox()
        for subset in Subset:
            self.subset_box.addItem(f"{subset.value} ({len(load_problems(subset)):,})", subset)
        self.subset_box.setCurrentIndex(list(Subset).index(Subset.SINGLE_LINE))
        self.sample_spin = QSpinBox()
        self.sample_spin.setRange(1, 10_000)
        self.sample_spin.setValue(DEFAULT_SAMPLE)
        self.sample_spin.setToolTip("problems drawn at random (the seed fixes which); more than the subset: all")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 1_000_000)
        self.seed_spin.setValue(1)
        self.run_button = QPushButton("Run quality")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status = QLabel("Scores each chosen quant on HumanEval-Infilling: its completions run as programs "
                             "in a sandbox, pass@1 is the share that pass the tests.")
        self.status.setWordWrap(True)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.size_plot = self._plot("file size", "B", "pass@1 vs file size")
        self.speed_plot = self._plot("generation", "tok/s", "pass@1 vs generation speed")
        self.failures = QListWidget()
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.completion_view = QPlainTextEdit()
        self.canonical_view = QPlainTextEdit()
        for view, hint in ((self.completion_view, "the quant's completion"),
                           (self.canonical_view, "the canonical solution")):
            view.setReadOnly(True)
            view.setFont(mono)
            view.setPlaceholderText(hint)
            view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.failure_reason = QLabel("")
        self.failure_reason.setWordWrap(True)

        controls = QHBoxLayout()
        for label, widget in (("Subset", self.subset_box), ("Problems", self.sample_spin), ("Seed", self.seed_spin)):
            controls.addWidget(QLabel(label))
            controls.addWidget(widget)
        controls.addStretch(1)
        controls.addWidget(self.run_button)
        controls.addWidget(self.cancel_button)

        charts = QSplitter(Qt.Orientation.Horizontal)
        charts.addWidget(self.size_plot)
        charts.addWidget(self.speed_plot)
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.table)
        top.addWidget(charts)
        side_by_side = QSplitter(Qt.Orientation.Horizontal)
        for title, view in (("Completion", self.completion_view), ("Canonical solution", self.canonical_view)):
            column = QWidget()
            box = QVBoxLayout(column)
            box.setContentsMargins(0, 0, 0, 0)
            box.addWidget(QLabel(f"<b>{title}</b>"))
            box.addWidget(view)
            side_by_side.addWidget(column)
        failures_column = QWidget()
        failures_box = QVBoxLayout(failures_column)
        failures_box.setContentsMargins(0, 0, 0, 0)
        failures_box.addWidget(QLabel("<b>Failing problems</b>"))
        failures_box.addWidget(self.failures)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(failures_column)
        bottom.addWidget(side_by_side)
        bottom.setStretchFactor(1, 2)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(top)
        body.addWidget(bottom)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(body, 1)
        layout.addWidget(self.failure_reason)
        layout.addWidget(self.status)

        self.worker = QualityWorker()
        self.worker.moveToThread(thread)
        self._run_requested.connect(self.worker.run)
        self.worker.progress.connect(self._on_progress)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button.clicked.connect(self.cancel)
        self.failures.currentItemChanged.connect(self._show_failure)

    @staticmethod
    def _plot(x_label: str, x_units: str, title: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(background="w")
        plot.setLabel("bottom", x_label, units=x_units)
        plot.setLabel("left", "pass@1", units="%")
        plot.setTitle(title)
        plot.showGrid(x=True, y=True, alpha=0.3)
        return plot

    # ---------------------------------------------------------------- running
    @property
    def running(self) -> bool:
        return self._cancel is not None

    def settings_from_controls(self) -> EvalSettings:
        # Qt hands a str-based enum back as a plain str: turn it into the Subset again.
        subset = Subset(self.subset_box.currentData())
        total = len(load_problems(subset))
        sample = self.sample_spin.value()
        selection = Selection(sample=sample, seed=self.seed_spin.value()) if sample < total else Selection()
        return EvalSettings(subset=subset, selection=selection, n_gpu_layers=self.n_gpu_layers)

    def run(self, settings: EvalSettings | None = None) -> None:
        models = self._selected_models()
        if not 1 <= len(models) <= MAX_MODELS:
            self.status.setText(f"Pick 1 to {MAX_MODELS} models (now {len(models)}).")
            return
        if self.running or self._busy():
            self.status.setText("Another run is going on: quants run one at a time.")
            return
        self._cancel = CancelToken()
        self._models = models
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.running_changed.emit(True)
        self.status.setText("Starting… completions in the editor pause until the run ends.")
        self._run_requested.emit(models, settings or self.settings_from_controls(), self._cancel)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()
            self.status.setText("Cancelling after the running problem…")

    def _finish(self) -> None:
        self._cancel = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.running_changed.emit(False)

    def _on_progress(self, p: Progress) -> None:
        name = Path(p.model).name
        if p.stage != "running":
            self.status.setText(f"Quant {p.model_index + 1} of {p.model_count}: {name} — {p.stage}…")
            return
        eta = f", about {p.eta_s:,.0f} s left for this quant" if p.eta_s is not None else ""
        self.status.setText(f"Quant {p.model_index + 1} of {p.model_count}: {name} — {p.done:,} of {p.total:,} "
                            f"problems, {p.passed:,} passed{eta}.")

    def _on_failed(self, message: str) -> None:
        self._finish()
        self.status.setText(f"Quality run failed: {message}")

    def _on_finished(self, report: EvaluationReport) -> None:
        self.report = report  # before running_changed: the window enables its export on it
        self.show_report(report)
        self._finish()
        notes = " ".join(report.notes)
        if report.cancelled:
            self.status.setText("Cancelled: the scores cover what finished; Run again resumes. " + notes)
        else:
            self.status.setText(f"Done: {report.subset.value}, {report.selection}. {notes}".strip())

    # ---------------------------------------------------------------- showing
    def show_report(self, report: EvaluationReport) -> None:
        self.table.setRowCount(len(report.scores))
        for row, score in enumerate(report.scores):
            for col, text in enumerate(score_row(score)):
                item = QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                item.setToolTip(f"{score.model}\nresults: {score.run_folder}")
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self._chart(self.size_plot, report, lambda s: float(s.file_bytes or 0))
        self._chart(self.speed_plot, report, lambda s: s.gen_tps_mean or 0.0)
        self._list_failures(report)

    @staticmethod
    def _chart(plot: pg.PlotWidget, report: EvaluationReport, x_of: Callable[[ModelScore], float]) -> None:
        plot.clear()
        scores = [s for s in report.scores if s.n]
        if not scores:
            return
        xs = [x_of(s) for s in scores]
        ys = [100 * s.pass_at_1 for s in scores]
        tops = [100 * s.ci[1] - y for s, y in zip(scores, ys, strict=True)]
        bottoms = [y - 100 * s.ci[0] for s, y in zip(scores, ys, strict=True)]
        import numpy as np

        plot.addItem(pg.ErrorBarItem(x=np.array(xs), y=np.array(ys), top=np.array(tops), bottom=np.array(bottoms),
                                     beam=0, pen=pg.mkPen("#57606a")))
        plot.addItem(pg.ScatterPlotItem(x=xs, y=ys, size=12, brush=pg.mkBrush("#1f6feb"), pen=pg.mkPen("k")))
        for score, x, y in zip(scores, xs, ys, strict=True):
            label = pg.TextItem(f"{score.label}  {y:.0f} %", color="k", anchor=(0, 1.2))
            label.setPos(x, y)
            plot.addItem(label)

    def _list_failures(self, report: EvaluationReport) -> None:
        self.failures.clear()
        self.completion_view.clear()
        self.canonical_view.clear()
        self.failure_reason.clear()
        labels = {s.model: s.label for s in report.scores}
        shown = 0
        total = 0
        for score in report.scores:
            for record, problem in report.failures(score.model):
                total += 1
                if shown >= MAX_LISTED_FAILURES:
                    continue
                item = QListWidgetItem(f"{labels[score.model]} · {record.task_id} · {record.reason}")
                item.setData(Qt.ItemDataRole.UserRole, (record, problem))
                self.failures.addItem(item)
                shown += 1
        if total > shown:
            self.failures.addItem(f"… and {total - shown:,} more (all in the run folders' results.jsonl)")

    def _show_failure(self, item: QListWidgetItem | None) -> None:
        data = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if not data:
            return
        record, problem = data
        self.completion_view.setPlainText(record.completion)
        self.canonical_view.setPlainText(problem.canonical_solution)
        self.failure_reason.setText(f"{record.task_id}: {record.reason} (stopped: {record.stop_reason or '—'})")
