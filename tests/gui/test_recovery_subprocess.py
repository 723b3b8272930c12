"""Crash recovery end to end: the real app in a subprocess, killed with SIGKILL, started again.

Each start runs ``app.gui.application.run_gui`` — the code ``python main.py [FILE]`` runs —
through a small driver (``DRIVER`` below) that plays the user with the app's own objects:
it answers the recovery dialog (and any message box) by clicking its buttons, opens a
file the way File → Open does, types, and prints what the window shows as JSON lines.
The only thing it changes is the recovery interval (200 ms instead of 5 s), through the
module constant the window reads. Settings and data live in temporary XDG folders.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.recovery import RECORD_SUFFIX, decode_record

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0  # generous: the CI machine may be busy

DRIVER = r'''
import json, os, sys
from pathlib import Path
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
import app.gui.main_window as main_window
import app.gui.recovery_dialog as recovery_dialog
from app.gui.application import run_gui

main_window.RECOVERY_INTERVAL_MS = 200  # 5 s in the app; the only change made for the test
app = QApplication(sys.argv[:1])
state = {"offered": False, "done": False}


def emit(event, **data):
    print(json.dumps({"event": event, **data}), flush=True)


real_offer = recovery_dialog.offer_recovery


def offer(window, preferred=None):
    chosen = real_offer(window, preferred)
    state["offered"] = True
    return chosen


recovery_dialog.offer_recovery = offer


def describe(window):
    return {
        "text": window.editor.toPlainText(),
        "path": str(window.current_path) if window.current_path else None,
        "modified": window.editor.document().isModified(),
    }


def answer_message_box():
    """Discard where asked, OK otherwise (the box's buttons are looked up when clicked: Qt may rebuild them)."""
    box = QApplication.activeModalWidget()
    if isinstance(box, QMessageBox):
        (box.button(QMessageBox.StandardButton.Discard) or box.button(QMessageBox.StandardButton.Ok)).click()


def poll():
    modal = QApplication.activeModalWidget()
    if isinstance(modal, recovery_dialog.RecoveryDialog):
        if modal.property("answered"):
            return
        modal.setProperty("answered", True)
        emit("dialog", offered=[{"text": c.text, "path": str(c.original_path) if c.original_path else None,
                                 "legacy": c.legacy} for c in modal.candidates])
        answer = os.environ.get("DRIVER_RECOVERY", "restore")
        button = {"restore": modal.restore_button, "later": modal.later_button, "discard": modal.discard_button}[answer]
        # From the event loop, not inside this timer: a click may open a nested loop (Discard asks).
        QTimer.singleShot(0, lambda: button.click())
        return
    if isinstance(modal, QMessageBox):
        if not modal.property("answered"):
            modal.setProperty("answered", True)
            emit("message", text=modal.text())
            QTimer.singleShot(0, answer_message_box)
        return
    if not state["offered"] or state["done"]:
        return
    state["done"] = True
    window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, main_window.MainWindow))
    emit("started", **describe(window))
    if os.environ.get("DRIVER_OPEN"):
        window.open_file(Path(os.environ["DRIVER_OPEN"]))  # what File > Open does with the chosen file
        window.editor.finish_loading()
    if os.environ.get("DRIVER_TYPE"):
        window.stack.setCurrentWidget(window.editor)
        cursor = window.editor.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        window.editor.setTextCursor(cursor)
        window.editor.textCursor().insertText(os.environ["DRIVER_TYPE"])
        emit("typed", **describe(window))
    if os.environ.get("DRIVER_QUIT"):
        window.close()


timer = QTimer()
timer.timeout.connect(poll)
timer.start(20)
sys.exit(run_gui(sys.argv[1:]))
'''


class App:
    """One running Starpad: its process and the JSON events its driver prints."""

    def __init__(self, env: dict[str, str], args: list[str], **driver: str) -> None:
        extra = {f"DRIVER_{key.upper()}": value for key, value in driver.items()}
        self.process = subprocess.Popen(
            [sys.executable, "-c", DRIVER, *args],
            cwd=ROOT,
            env={**env, **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []  # every event taken off the queue, in order
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.events.put(json.loads(line))
        self.events.put({"event": "exit"})

    def next_event(self, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise AssertionError(f"no event from the app within {timeout} s: {self.stderr()}") from None

    def wait_for(self, name: str) -> dict[str, Any]:
        """The next event called ``name``; the events skipped on the way stay in ``seen``."""
        while True:
            event = self.next_event()
            self.seen.append(event)
            if event["event"] == name:
                return event
            if event["event"] == "exit":
                raise AssertionError(f"the app exited ({self.process.wait()}) before {name!r}: {self.stderr()}")

    def events_named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["event"] == name]

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()[-3000:]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


class Sandbox:
    """Temporary XDG folders and every app started in them (killed at the end)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.data_home = tmp_path / "data"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "QT_QPA_PLATFORM": "offscreen",
            "XDG_DATA_HOME": str(self.data_home),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "XDG_RUNTIME_DIR": str(tmp_path / "runtime"),
        }
        (tmp_path / "runtime").mkdir(mode=0o700)
        self.apps: list[App] = []

    @property
    def app_data(self) -> Path:
        return self.data_home / "Starpad" / "Starpad"  # QStandardPaths AppDataLocation

    def start(self, *args: str | Path, **driver: str) -> App:
        app = App(self.env, [str(a) for a in args], **driver)
        self.apps.append(app)
        return app

    def records(self) -> dict[Path, str]:
        """Every recovery record on disk, with its text."""
        sessions = self.app_data / "recovery" / "sessions"
        found = {}
        for path in sessions.glob(f"*/*{RECORD_SUFFIX}"):
            try:
                found[path] = decode_record(path.read_bytes())[1]
            except Exception:  # noqa: BLE001 - caught mid-rename: look again
                continue
        return found

    def wait_for_record(self, text: str, timeout: float = 30.0) -> Path:
        """Poll the disk (another process writes it) until a record holds ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path, recorded in self.records().items():
                if recorded == text:
                    return path
            time.sleep(0.05)
        raise AssertionError(f"no recovery record with {text!r} after {timeout} s")

    def crash_with_unsaved(self, text: str, *args: str | Path, **driver: str) -> dict[str, Any]:
        """Start, type ``text``, wait until it is on disk, kill -9; what the window showed.

        Whatever earlier crashes left is kept for later (the recovery dialog's Later).
        """
        app = self.start(*args, type=text, **{"recovery": "later", **driver})
        typed = app.wait_for("typed")
        self.wait_for_record(typed["text"])
        app.kill()
        return typed


@pytest.fixture()
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path)
    yield box
    for app in box.apps:
        app.kill()


def test_no_argument_start_offers_and_restores_killed_text(sandbox: Sandbox) -> None:
    sandbox.crash_with_unsaved("print('never saved')\n")
    (old_record,) = sandbox.records()

    app = sandbox.start(recovery="restore")
    dialog = app.wait_for("dialog")
    assert dialog["offered"] == [{"text": "print('never saved')\n", "path": None, "legacy": False}]
    started = app.wait_for("started")
    assert started == {"event": "started", "text": "print('never saved')\n", "path": None, "modified": True}
    # The restored text now lives in the new instance's own record; the old one is gone.
    (new_record,) = sandbox.records()
    assert new_record.parent != old_record.parent and not old_record.parent.exists()


def test_file_argument_start_offers_that_files_unsaved_text_first(sandbox: Sandbox) -> None:
    doc = sandbox.tmp / "doc.py"
    doc.write_text("original = 1\n", encoding="utf-8")
    sandbox.crash_with_unsaved("other = 2\n")  # a document of another instance, never saved
    sandbox.crash_with_unsaved("unsaved = 3\n", doc)

    app = sandbox.start(doc, recovery="restore")
    offered = app.wait_for("dialog")["offered"]
    assert [o["path"] for o in offered] == [str(doc), None]
    assert offered[0]["text"] == "original = 1\nunsaved = 3\n"
    started = app.wait_for("started")
    assert started["text"] == "original = 1\nunsaved = 3\n" and started["path"] == str(doc) and started["modified"]
    assert doc.read_text(encoding="utf-8") == "original = 1\n"  # the file changes only on Save


def test_later_keeps_recovery_through_a_clean_quit_with_a_file_argument(sandbox: Sandbox) -> None:
    doc = sandbox.tmp / "doc.py"
    doc.write_text("x = 1\n", encoding="utf-8")
    sandbox.crash_with_unsaved("y = 2\n", doc)

    later = sandbox.start(doc, recovery="later", quit="1")
    assert later.wait_for("dialog")["offered"][0]["text"] == "x = 1\ny = 2\n"
    assert later.wait_for("started")["text"] == "x = 1\n"  # the file as it is on disk
    assert later.process.wait(timeout=START_TIMEOUT_S) == 0  # quit cleanly

    again = sandbox.start(doc, recovery="restore")
    assert again.wait_for("dialog")["offered"][0]["text"] == "x = 1\ny = 2\n"
    assert again.wait_for("started")["text"] == "x = 1\ny = 2\n"


def test_a_file_opened_after_start_is_recovered_with_its_path(sandbox: Sandbox) -> None:
    doc = sandbox.tmp / "later.py"
    doc.write_text("def f():\n", encoding="utf-8")
    sandbox.crash_with_unsaved("    return 1\n", open=str(doc))

    app = sandbox.start(recovery="restore")
    offered = app.wait_for("dialog")["offered"]
    assert offered == [{"text": "def f():\n    return 1\n", "path": str(doc), "legacy": False}]
    started = app.wait_for("started")
    assert started["path"] == str(doc) and started["text"] == "def f():\n    return 1\n" and started["modified"]


def test_two_killed_instances_both_come_back(sandbox: Sandbox) -> None:
    first = sandbox.start(type="text of the first window\n")
    second = sandbox.start(type="text of the second window\n")
    for app in (first, second):
        sandbox.wait_for_record(app.wait_for("typed")["text"])
    assert len({path.parent for path in sandbox.records()}) == 2  # a session each
    first.kill()
    second.kill()

    restored = set()
    one = sandbox.start(recovery="restore")
    assert len(one.wait_for("dialog")["offered"]) == 2
    restored.add(one.wait_for("started")["text"])
    # While the first is running with one text, a second start offers only the other one.
    two = sandbox.start(recovery="restore")
    assert len(two.wait_for("dialog")["offered"]) == 1
    restored.add(two.wait_for("started")["text"])
    assert restored == {"text of the first window\n", "text of the second window\n"}


def test_a_second_instance_never_sees_the_live_text_of_the_first(sandbox: Sandbox) -> None:
    running = sandbox.start(type="live and unsaved\n")
    record = sandbox.wait_for_record(running.wait_for("typed")["text"])

    second = sandbox.start(recovery="discard")
    started = second.wait_for("started")
    assert second.events_named("dialog") == [] and started["text"] == ""
    assert record.is_file() and running.process.poll() is None


def test_discard_asks_then_removes_for_good(sandbox: Sandbox) -> None:
    sandbox.crash_with_unsaved("throw me away\n")
    app = sandbox.start(recovery="discard")
    app.wait_for("dialog")
    question = app.wait_for("message")
    assert "Discard the unsaved text of untitled" in question["text"]
    assert app.wait_for("started")["text"] == ""
    app.kill()
    assert sandbox.records() == {}
    nothing = sandbox.start(recovery="restore")
    assert nothing.wait_for("started")["text"] == "" and nothing.events_named("dialog") == []


def test_legacy_recovery_file_is_offered(sandbox: Sandbox) -> None:
    sandbox.app_data.mkdir(parents=True)
    (sandbox.app_data / "recovery.txt").write_text("\nfrom the old version\n", encoding="utf-8")
    app = sandbox.start(recovery="restore")
    assert app.wait_for("dialog")["offered"] == [{"text": "from the old version\n", "path": None, "legacy": True}]
    assert app.wait_for("started")["text"] == "from the old version\n"
    assert not (sandbox.app_data / "recovery.txt").exists()
    assert list(sandbox.records().values()) == ["from the old version\n"]


def test_damaged_recovery_data_is_reported_and_kept_aside_never_fatal(sandbox: Sandbox) -> None:
    sandbox.app_data.mkdir(parents=True)
    (sandbox.app_data / "recovery.txt").write_bytes(b"/tmp/a.py\nbroken \xff\xfe text")
    app = sandbox.start(recovery="restore")
    message = app.wait_for("message")
    assert "not valid UTF-8" in message["text"] and "damaged" in message["text"]
    assert app.wait_for("started")["text"] == ""
    (kept,) = (sandbox.app_data / "recovery" / "damaged").iterdir()
    assert kept.read_bytes() == b"/tmp/a.py\nbroken \xff\xfe text"
