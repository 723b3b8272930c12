"""Plays the user for ``test_tabs_subprocess.py``: the real app, ``run_gui`` (what ``python main.py``
runs), in this process, driven through its own objects and reporting as JSON lines.

Environment: ``DRIVER_OPEN`` (paths, ``os.pathsep``-separated) are opened in tabs and
``DRIVER_TYPE`` is typed at the end of each; ``DRIVER_UNTITLED`` is typed into a new untitled
tab; ``DRIVER_RECOVERY`` answers the recovery dialog (``all``: Restore all, else Later).
``DRIVER_QUIT`` closes the window (a clean quit) once that is done.
The only change to the app is the recovery interval (200 ms instead of 5 s).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QTimer  # noqa: E402 - after the path and platform are set
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

import app.gui.main_window as main_window  # noqa: E402
import app.gui.recovery_dialog as recovery_dialog  # noqa: E402
from app.gui.application import run_gui  # noqa: E402

main_window.RECOVERY_INTERVAL_MS = 200
application = QApplication(sys.argv[:1])
state = {"offered": False, "done": False}
real_offer = recovery_dialog.offer_recovery


def emit(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, **data}), flush=True)


def offer(window: main_window.MainWindow, preferred: Path | None = None) -> list[Any]:
    restored = real_offer(window, preferred)
    state["offered"] = True
    return restored


recovery_dialog.offer_recovery = offer


def describe_tabs(window: main_window.MainWindow) -> list[dict[str, Any]]:
    return [
        {"path": str(tab.path) if tab.path else None, "text": tab.editor.document_text(), "modified": tab.modified}
        for tab in window.tabs.all()
    ]


def type_at_end(window: main_window.MainWindow, text: str) -> None:
    cursor = window.editor.textCursor()
    cursor.movePosition(cursor.MoveOperation.End)
    window.editor.setTextCursor(cursor)
    window.editor.textCursor().insertText(text)


def poll() -> None:
    modal = QApplication.activeModalWidget()
    if isinstance(modal, recovery_dialog.RecoveryDialog):
        if not modal.property("answered"):
            modal.setProperty("answered", True)
            emit("dialog", offered=[{"path": str(c.original_path) if c.original_path else None, "text": c.text}
                                    for c in modal.candidates])
            everything = os.environ.get("DRIVER_RECOVERY") == "all"
            button = modal.restore_all_button if everything else modal.later_button
            QTimer.singleShot(0, button.click)  # from the event loop, not inside this timer
        return
    if isinstance(modal, QMessageBox):
        if not modal.property("answered"):
            modal.setProperty("answered", True)
            emit("message", text=modal.text())
            QTimer.singleShot(0, modal.accept)
        return
    if not state["offered"] or state["done"]:
        return
    state["done"] = True
    window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, main_window.MainWindow))
    emit("started", tabs=describe_tabs(window))
    for name in filter(None, os.environ.get("DRIVER_OPEN", "").split(os.pathsep)):
        window.open_file(Path(name))  # what File > Open does with the chosen file
        window.editor.finish_loading()
        type_at_end(window, os.environ.get("DRIVER_TYPE", ""))
    if os.environ.get("DRIVER_UNTITLED"):
        window.new_file()
        type_at_end(window, os.environ["DRIVER_UNTITLED"])
    emit("typed", tabs=describe_tabs(window))
    if os.environ.get("DRIVER_QUIT"):
        window.close()


timer = QTimer()
timer.timeout.connect(poll)
timer.start(20)
sys.exit(run_gui(sys.argv[1:]))
