"""Per-tab crash recovery end to end: the real app with three modified tabs, killed with
SIGKILL, started again; every tab's text is offered, per file, and Restore all brings each
back into its own tab. The app runs through ``tests/gui/tabs_driver.py`` (``run_gui``, what
``python main.py`` runs) with a sandbox HOME and XDG folders."""

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
DRIVER = Path(__file__).with_name("tabs_driver.py")
TIMEOUT_S = 60.0  # generous: the machine may be busy


class Run:
    """One running Starpad and the JSON events its driver prints."""

    def __init__(self, env: dict[str, str], args: list[str]) -> None:
        self.process = subprocess.Popen([sys.executable, str(DRIVER), *args], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.events.put(json.loads(line))
        self.events.put({"event": "exit"})

    def wait_for(self, name: str) -> dict[str, Any]:
        while True:
            try:
                event = self.events.get(timeout=TIMEOUT_S)
            except queue.Empty:
                self.kill()
                raise AssertionError(f"no {name!r} from the app within {TIMEOUT_S} s") from None
            if event["event"] == name:
                return event
            if event["event"] == "exit":
                stderr = self.process.stderr.read()[-3000:] if self.process.stderr else ""
                raise AssertionError(f"the app exited ({self.process.wait()}) before {name!r}: {stderr}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture()
def sandbox(tmp_path: Path) -> Iterator[tuple[dict[str, str], list[Run]]]:
    for name in ("home", "data", "config", "cache", "runtime"):
        (tmp_path / name).mkdir(mode=0o700)
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    runs: list[Run] = []
    yield env, runs
    for run in runs:
        run.kill()


def records(data_home: Path) -> dict[str | None, str]:
    """Every recovery record on disk: its file's path (None: untitled) → its text."""
    found: dict[str | None, str] = {}
    for path in (data_home / "Starpad" / "Starpad" / "recovery" / "sessions").glob(f"*/*{RECORD_SUFFIX}"):
        try:
            meta, text = decode_record(path.read_bytes())
        except Exception:  # noqa: BLE001 - caught mid-rename: look again
            continue
        found[meta["path"]] = text
    return found


def test_killed_with_three_modified_tabs_a_restart_recovers_each(
    sandbox: tuple[dict[str, str], list[Run]], tmp_path: Path
) -> None:
    env, runs = sandbox
    first_file, second_file = tmp_path / "first.py", tmp_path / "second.py"
    first_file.write_text("one = 1\n", encoding="utf-8")
    second_file.write_text("two = 2\n", encoding="utf-8")
    crashing = Run({**env, "DRIVER_OPEN": os.pathsep.join(map(str, (first_file, second_file))),
                    "DRIVER_TYPE": "# unsaved\n", "DRIVER_UNTITLED": "draft = 3\n"}, [])
    runs.append(crashing)
    typed = {tab["path"]: tab["text"] for tab in crashing.wait_for("typed")["tabs"]}
    assert typed == {str(first_file): "one = 1\n# unsaved\n", str(second_file): "two = 2\n# unsaved\n",
                     None: "draft = 3\n"}
    deadline = time.monotonic() + 30
    while records(tmp_path / "data") != typed and time.monotonic() < deadline:
        time.sleep(0.05)  # the app's recovery timer writes them
    assert records(tmp_path / "data") == typed
    crashing.kill()

    restarted = Run({**env, "DRIVER_RECOVERY": "all"}, [])
    runs.append(restarted)
    offered = restarted.wait_for("dialog")["offered"]
    assert {entry["path"]: entry["text"] for entry in offered} == typed  # one entry per file
    tabs = restarted.wait_for("started")["tabs"]
    assert {tab["path"]: tab["text"] for tab in tabs} == typed  # each in its own tab, nothing else open
    assert all(tab["modified"] for tab in tabs)
    assert first_file.read_text(encoding="utf-8") == "one = 1\n"  # files change only on Save
    # The texts now live in the new instance's records; the dead instance's are gone.
    assert records(tmp_path / "data") == typed
    sessions = list((tmp_path / "data" / "Starpad" / "Starpad" / "recovery" / "sessions").iterdir())
    assert len(sessions) == 1


def test_a_clean_quit_and_a_restart_bring_the_tabs_back(
    sandbox: tuple[dict[str, str], list[Run]], tmp_path: Path
) -> None:
    env, runs = sandbox
    paths = [tmp_path / "one.py", tmp_path / "two.py"]
    for path in paths:
        path.write_text(f"# {path.name}\n", encoding="utf-8")
    first = Run({**env, "DRIVER_OPEN": os.pathsep.join(map(str, paths)), "DRIVER_QUIT": "1"}, [])
    runs.append(first)
    first.wait_for("typed")
    assert first.process.wait(timeout=TIMEOUT_S) == 0
    paths[0].unlink()  # gone since: skipped, the other comes back

    second = Run(env, [])
    runs.append(second)
    tabs = second.wait_for("started")["tabs"]
    assert tabs == [{"path": str(paths[1]), "text": "# two.py\n", "modified": False}]
