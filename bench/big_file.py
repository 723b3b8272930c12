"""Scenario 4: opening a file as big as the editor accepts (20 MB) in the real main window.

Measured in its own process (``python -m bench.big_file OUT.json [--mb 20]``), with the
offscreen platform and a throw-away settings folder, so peak RSS is Starpad's alone:

- ``usable_s``: until ``open_file`` has returned and the first screenful is painted; from
  then on keys are accepted (while the rest loads they are kept and applied in order);
- ``loaded_s``: until the whole text is in the document (``loading_finished``);
- ``highlighted_s``: until the colours of the lines in view are final;
- ``peak_rss_bytes``: the process's high-water mark (``ru_maxrss``), with the RSS before
  opening for comparison;
- ``max_gap_ms`` / ``p99_gap_ms``: a 5 ms heartbeat on the GUI thread, from the call to
  ``open_file`` until highlighted: how long a repaint or a keystroke could have waited;
- ``typing``: 20 keystrokes (``TYPED``) at the end of the loaded file, 40 ms apart, and the longest
  heartbeat gap meanwhile (work per keystroke that grows with the file shows here).

The text is standard-library Python repeated (``bench.workload.code_text``), cut at a line
break just under the size asked for.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HEARTBEAT_MS = 5
#: What the issue asks of a 20 MB file on the 2-core reference machine.
TARGETS = {"usable_s": 5.0, "loaded_s": 15.0, "peak_rss_mb": 600.0}
#: Typed at the end of the loaded file, one key every 40 ms.
TYPED = "x = compute(1, 2)  #"


def big_text(n_bytes: int) -> str:
    """Real Python source repeated to just under ``n_bytes`` (ASCII, so characters = bytes)."""
    from bench.workload import code_text

    base = code_text() + "\n"
    text = base * (n_bytes // len(base.encode("utf-8")) + 1)
    text = text.encode("utf-8")[:n_bytes].decode("utf-8", errors="ignore")
    return text[: text.rfind("\n") + 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--mb", type=float, default=20.0, help="file size in MiB (the editor's limit is 20)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a phase after this many seconds")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sandbox = Path(tempfile.mkdtemp(prefix="starpad-bench-big-"))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        os.environ[var] = str(sandbox / var.lower())

    import psutil
    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtGui import QTextCursor
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.gui.application import configure_interpreter
    from app.gui.main_window import MainWindow
    from app.gui.settings import Settings

    path = sandbox / "big_module.py"
    path.write_text(big_text(int(args.mb * 1024 * 1024)), encoding="utf-8")
    size = path.stat().st_size
    lines = path.read_bytes().count(b"\n")

    configure_interpreter()  # as run_gui does
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(Settings(auto_complete=False))
    window.resize(1200, 800)
    window.show()

    beats: list[float] = []
    heartbeat = QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.timeout.connect(lambda: beats.append(time.perf_counter()))
    heartbeat.start(HEARTBEAT_MS)

    def wait_until(condition: Callable[[], bool], timeout_s: float) -> float:
        """Run the event loop until ``condition``; the moment it first held."""
        deadline = time.perf_counter() + timeout_s
        met: list[float] = []
        loop = QEventLoop()

        def poll() -> None:
            if condition():
                met.append(time.perf_counter())
                loop.quit()
            elif time.perf_counter() > deadline:
                loop.quit()

        timer = QTimer()
        timer.timeout.connect(poll)
        timer.start(2)
        loop.exec()
        timer.stop()
        if not met:
            raise TimeoutError(f"gave up after {timeout_s:.0f} s")
        return met[0]

    def gaps(began: float, ended: float) -> list[float]:
        inside = [b for b in beats if began <= b <= ended]
        return [(b - a) * 1000 for a, b in zip([began, *inside], [*inside, ended], strict=True)]

    def longest(began: float, ended: float, n: int = 5) -> list[dict[str, float]]:
        """The ``n`` longest gaps and when they started (seconds after ``began``), to find their cause."""
        inside = [began, *[b for b in beats if began <= b <= ended], ended]
        pairs = sorted(zip(inside[:-1], inside[1:], strict=True), key=lambda ab: ab[0] - ab[1])[:n]
        return [{"at_s": round(a - began, 3), "ms": round((b - a) * 1000, 1)} for a, b in pairs]

    def pause(seconds: float) -> None:
        until = time.perf_counter() + seconds
        wait_until(lambda: time.perf_counter() > until, seconds + 5)

    pause(1.0)  # the window settles
    rss_before = psutil.Process().memory_info().rss

    began = time.perf_counter()
    if not window.open_file(path):
        raise RuntimeError(f"could not open {path}")
    returned = time.perf_counter()
    painted = wait_until(lambda: bool(beats) and beats[-1] > returned, 30)  # the loop turned: first screen shown
    loaded = wait_until(lambda: not window.editor.loading, args.timeout)
    highlighted: float | None = None
    try:
        highlighted = wait_until(
            lambda: not window.editor.loading and not window.language_pending and not window.highlighter.busy,
            args.timeout,
        )
    except TimeoutError:  # recorded as such: the numbers before it still tell
        pass
    opened = highlighted or time.perf_counter()
    opening = gaps(began, opened)
    opening_longest = longest(began, opened)
    rss_after = psutil.Process().memory_info().rss
    peak_rss = max(rss_after, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)

    typing_result: dict[str, object] | None = None
    if highlighted is not None:
        window.editor.setFocus()
        window.editor.moveCursor(QTextCursor.MoveOperation.End)
        typing_began = time.perf_counter()
        for char in TYPED:
            QTest.keyClicks(window.editor, char)
            pause(0.04)
        typing_done = wait_until(lambda: not window.highlighter.busy, args.timeout)
        typing_result = {"keys": len(TYPED), "seconds": typing_done - typing_began,
                         "max_gap_ms": max(gaps(typing_began, typing_done)),
                         "longest_gaps": longest(typing_began, typing_done, 3)}
    heartbeat.stop()

    result = {
        "file_bytes": size,
        "lines": lines,
        "heartbeat_ms": HEARTBEAT_MS,
        "open_file_s": returned - began,
        "usable_s": painted - began,
        "loaded_s": loaded - began,
        "highlighted_s": None if highlighted is None else highlighted - began,
        "rss_before_bytes": rss_before,
        "rss_after_bytes": rss_after,
        "peak_rss_bytes": peak_rss,
        "max_gap_ms": max(opening),
        "p99_gap_ms": sorted(opening)[int(len(opening) * 0.99)],
        "longest_gaps": opening_longest,
        "typing": typing_result,
        "highlight_mode": getattr(getattr(window.highlighter, "mode", None), "value", "whole"),
        "targets": TARGETS,
    }
    coloured = f"{highlighted - began:.1f} s" if highlighted is not None else f"not within {args.timeout:.0f} s"
    typed = f"{typing_result['max_gap_ms']:.0f} ms" if typing_result else "not measured"
    print(
        f"{size / 1e6:.1f} MB, {lines:,} lines: usable {result['usable_s']:.1f} s, loaded {result['loaded_s']:.1f} s, "
        f"highlighted {coloured}, peak RSS {peak_rss / 2**20:.0f} MiB, "
        f"longest stall {result['max_gap_ms']:.0f} ms (typing: {typed})",
        file=sys.stderr,
    )
    window.client.shutdown()
    window.hide()
    args.out.write_text(json.dumps(result, indent=2))
    app.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
