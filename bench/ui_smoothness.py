"""Scenario 3: the longest event-loop stall of the real main window.

A 5 ms precise heartbeat timer runs on the GUI thread while the window (1) loads a model,
(2) streams a completion into ghost text and (3) opens a 5,000-line file. The gap between
two beats is how long the user would have waited for a repaint or a keystroke.

Runs in its own process (``python -m bench.ui_smoothness MODEL OUT.json``) with the
offscreen platform and a throw-away settings folder, so nothing of the user's is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HEARTBEAT_MS = 5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sandbox = Path(tempfile.mkdtemp(prefix="starpad-bench-ui-"))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        os.environ[var] = str(sandbox / var.lower())

    from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer, Slot
    from PySide6.QtGui import QTextCursor
    from PySide6.QtWidgets import QApplication

    from app.gui.application import configure_interpreter
    from app.gui.main_window import MainWindow
    from app.gui.settings import Settings
    from bench.workload import code_text, large_source_file

    configure_interpreter()  # as run_gui does
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(Settings(auto_complete=False, max_tokens=args.max_tokens))
    window.show()

    beats: list[float] = []
    heartbeat = QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.timeout.connect(lambda: beats.append(time.perf_counter()))
    heartbeat.start(HEARTBEAT_MS)

    class Finished(QObject):
        """Receives the worker's signal on the GUI thread (queued), as the window does."""

        def __init__(self) -> None:
            super().__init__()
            self.done = False

        @Slot(int, object, object)
        def on_finished(self, *_args: object) -> None:
            self.done = True

    finished = Finished()
    window.client.worker.completion_finished.connect(finished.on_finished)

    def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.perf_counter() + timeout_s
        loop = QEventLoop()
        poll = QTimer()
        poll.timeout.connect(lambda: loop.quit() if condition() or time.perf_counter() > deadline else None)
        poll.start(20)
        loop.exec()
        poll.stop()
        if not condition():
            raise TimeoutError("scenario did not finish in time")

    def settle() -> None:
        wait_until(lambda: True, 0)
        end = time.perf_counter() + 0.3
        wait_until(lambda: time.perf_counter() > end, 5)

    phases: dict[str, dict[str, float]] = {}

    def measure(name: str, start: Callable[[], object], done: Callable[[], bool], timeout_s: float) -> None:
        settle()
        began = time.perf_counter()
        QTimer.singleShot(0, start)
        wait_until(done, timeout_s)
        ended = time.perf_counter()
        inside = [b for b in beats if began <= b <= ended]
        gaps = [(b - a) * 1000 for a, b in zip([began, *inside], [*inside, ended], strict=True)]
        phases[name] = {
            "seconds": ended - began,
            "max_gap_ms": max(gaps),
            "p99_gap_ms": sorted(gaps)[int(len(gaps) * 0.99)] if gaps else 0.0,
            "beats": len(inside),
        }
        print(f"{name}: {phases[name]['max_gap_ms']:.0f} ms longest gap over {ended - began:.1f} s", file=sys.stderr)

    measure("load model", lambda: window.load_model(str(args.model)), lambda: window.model_info is not None, 900)

    # ~400 tokens before the caret: long enough to be real, short enough that the 3B model
    # spends its time streaming rather than reading the prompt (~20 s at 19 tok/s).
    document = code_text()[:2400]
    caret = document.rfind("\n", 0, 1500) + 1

    def start_completion() -> None:
        window.editor.setPlainText(document)
        cursor = window.editor.textCursor()
        cursor.setPosition(caret)
        window.editor.setTextCursor(cursor)
        finished.done = False
        window.request_completion()

    measure("stream completion", start_completion, lambda: finished.done, 900)
    streamed = window._last_result[0].stats.generated_tokens if window._last_result else 0  # noqa: SLF001

    big = Path(tempfile.mkdtemp(prefix="starpad-bench-file-")) / "big_module.py"
    big.write_text(large_source_file(5000), encoding="utf-8")
    window.editor.moveCursor(QTextCursor.MoveOperation.Start)
    measure("open 5,000-line file", lambda: window.open_file(big),
            lambda: window.current_path == big and not window.editor.loading and not window.language_pending
            and not window.highlighter.busy, 120)

    heartbeat.stop()
    window.client.shutdown()
    window.hide()
    summary = {"heartbeat_ms": HEARTBEAT_MS, "generated_tokens": streamed, "phases": phases}
    args.out.write_text(json.dumps(summary, indent=2))
    app.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
