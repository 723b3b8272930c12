"""``starpad --self-test MODEL``: prove an installation works, end to end, headless.

Runs the real window offscreen (so Qt, its platform plugin and the Pygments lexers are
exercised as in a bundle), loads the model on the worker thread, completes a FIM
prompt and prints the result with the engine's stats. Exit 0 on success, 1 otherwise.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QObject, QTimer, Slot  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.core.errors import ModelFileError  # noqa: E402
from app.core.model_info import model_info  # noqa: E402
from app.core.recovery import RecoveryStore  # noqa: E402

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow

PREFIX = "def fibonacci(n):\n    "
SUFFIX = "\n\nprint(fibonacci(10))\n"
TIMEOUT_S = 120


class _Probe(QObject):
    """Collects the worker's answers on the GUI thread (Qt queues them here)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        self.window = window
        self.outcome: dict[str, object] = {}
        self.loop = QEventLoop()

    @Slot(object, float)
    def loaded(self, info: object, seconds: float) -> None:
        self.outcome["info"], self.outcome["load_s"] = info, seconds
        cursor = self.window.editor.textCursor()
        cursor.setPosition(len(PREFIX))
        self.window.editor.setTextCursor(cursor)
        self.window.request_completion()

    @Slot(int, object, object)
    def finished(self, _request_id: int, result: object, _texts: object) -> None:
        self.outcome["result"] = result
        self.loop.quit()

    @Slot(str)
    def failed(self, message: str) -> None:
        self.outcome["error"] = message
        self.loop.quit()

    @Slot(int, str)
    def completion_failed(self, _request_id: int, message: str) -> None:
        self.failed(message)

    @Slot()
    def timed_out(self) -> None:
        self.failed(f"no completion within {TIMEOUT_S} s")


def run_self_test(model: str) -> int:
    try:
        model_info(model)  # a clear answer for a bad file before any window exists
    except ModelFileError as exc:
        print(f"starpad self-test: FAILED: {exc}", file=sys.stderr)
        return 1
    from app.gui.main_window import MainWindow
    from app.gui.settings import Settings

    started = time.perf_counter()
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    # Its own throw-away recovery folder: a self-test killed mid-run must not leave its sample
    # text to be offered as the user's at the next start.
    recovery_dir = tempfile.mkdtemp(prefix="starpad-selftest-")
    window = MainWindow(
        Settings(n_ctx=2048, max_tokens=16, auto_complete=False),
        interactive=False,
        recovery=RecoveryStore(Path(recovery_dir)),
    )
    window.show()
    window.editor.setPlainText(PREFIX + SUFFIX)
    probe = _Probe(window)
    worker = window.client.worker
    worker.model_loaded.connect(probe.loaded)
    worker.model_failed.connect(probe.failed)
    worker.completion_finished.connect(probe.finished)
    worker.completion_failed.connect(probe.completion_failed)
    QTimer.singleShot(TIMEOUT_S * 1000, probe.timed_out)
    window.load_model(model)
    probe.loop.exec()
    window.editor.document().setModified(False)
    window.close()
    shutil.rmtree(recovery_dir, ignore_errors=True)
    outcome = probe.outcome
    if "error" in outcome or "result" not in outcome:
        print(f"starpad self-test: FAILED: {outcome.get('error', 'no result')}", file=sys.stderr)
        return 1
    try:
        extras = _import_optional_parts()
    except ImportError as exc:  # a bundle that left out something the app needs
        print(f"starpad self-test: FAILED: {exc}", file=sys.stderr)
        return 1
    result, info = outcome["result"], outcome["info"]
    stats = result.stats  # type: ignore[attr-defined]
    print(f"starpad self-test: OK ({time.perf_counter() - started:.1f} s, Qt platform {app.platformName()})")
    print(f"model: {info.name} [{info.arch}, {info.file_type}], loaded in {outcome['load_s']:.2f} s")  # type: ignore[attr-defined]
    print(f"prompt: {stats.prompt_tokens} tokens, layout {result.prompt.layout.value}")  # type: ignore[attr-defined]
    print(f"completion ({result.stop_reason}): {result.text!r}")  # type: ignore[attr-defined]
    print(f"stats: first token {stats.ttft_ms:.0f} ms, prompt {stats.prompt_tps:.1f} tok/s, "
          f"generation {stats.gen_tps:.1f} tok/s, context {stats.ctx_used}/{stats.ctx_size}")
    print(f"parts: {extras}")
    return 0


def _import_optional_parts() -> str:
    """Import what the window only loads on demand, so a bundle missing it fails here."""
    import importlib
    import importlib.metadata

    for module in ("app.core.download", "app.gui.model_dialog", "app.gui.compare_window"):  # hub + TLS, chart
        importlib.import_module(module)
    from app.gui.plotting import pg

    chart = pg.PlotWidget(background="w")  # the comparison chart's kind of plot, rendered once
    chart.addItem(pg.ScatterPlotItem(spots=[{"pos": (1.0, 2.0), "size": 16}]))
    chart.resize(200, 120)
    if chart.grab().isNull():
        raise ImportError("the comparison chart did not render")
    chart.deleteLater()

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:  # frozen without dist-info
            return "bundled"

    return (
        f"comparison chart (pyqtgraph {version('pyqtgraph')}), "
        f"downloads (huggingface-hub {version('huggingface-hub')})"
    )
