"""The sandbox holds: every hostile program ends as a failure with a reason, and nothing
outside its temporary folder changes. Programs run for real (bwrap where it works)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.evaluation.sandbox import Protection, Sandbox, SandboxConfig, Verdict, _pids_of

FAST = SandboxConfig(timeout_s=1.5, workers=2)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    box = Sandbox(FAST)
    box.check()
    return box


@pytest.fixture()
def outside() -> Iterator[Path]:
    """A folder the sandbox can see but must not change: /tmp is replaced inside bwrap,
    so the canary lives in /var/tmp, where a program would find it."""
    base = Path("/var/tmp") if Path("/var/tmp").is_dir() else Path(tempfile.gettempdir())
    folder = Path(tempfile.mkdtemp(prefix="starpad-canary-", dir=base))
    folder.chmod(0o755)
    (folder / "canary.txt").write_text("still here")
    (folder / "canary.txt").chmod(0o644)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_passing_program_passes_with_a_clean_environment_and_empty_home(sandbox: Sandbox) -> None:
    result = sandbox.run("import json, os\nprint(json.dumps([sorted(os.environ), os.listdir('.'), "
                         "os.getcwd() == os.environ['HOME'] == os.environ['TMPDIR']]))")
    assert result.verdict is Verdict.PASSED and result.reason == "passed"
    names, listing, home_is_cwd = json.loads(result.stdout_tail)
    # bwrap's --chdir also sets PWD; nothing of Starpad's environment gets through.
    assert set(names) - {"PWD"} == {"HOME", "LANG", "PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "TMPDIR"}
    assert listing == [] and home_is_cwd is True


def test_an_exception_is_a_failure_named_by_it(sandbox: Sandbox) -> None:
    result = sandbox.run("def f():\n    raise KeyError('k')\nf()")
    assert result.verdict is Verdict.FAILED and result.reason == "failed: KeyError: 'k'"


def test_infinite_loop_times_out(sandbox: Sandbox) -> None:
    result = sandbox.run("while True:\n    pass")
    assert result.verdict is Verdict.TIMEOUT and result.reason == "timed out after 1.5 s"
    assert result.seconds < FAST.timeout_s + 2


def test_fork_bomb_is_contained_and_its_whole_tree_dies(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = sandbox.run("import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                         "        time.sleep(0.01)")
    assert result.verdict is Verdict.TIMEOUT
    assert time.monotonic() - started < FAST.timeout_s + 3
    if os.geteuid() == 0:  # the dedicated uids: nothing of theirs is left running
        uids = [sandbox._uid(slot) for slot in range(FAST.workers)]
        assert all(not _pids_of(uid) for uid in uids if uid is not None)


def test_ten_gigabytes_hit_the_memory_limit(sandbox: Sandbox) -> None:
    result = sandbox.run("x = bytearray(10 * 1024 ** 3)\nprint(len(x))")
    assert result.verdict is Verdict.MEMORY_LIMIT and "MemoryError" in result.reason


def test_a_gigabyte_to_stdout_hits_the_output_cap(sandbox: Sandbox) -> None:
    result = sandbox.run("import sys\nchunk = b'x' * 2 ** 20\nfor _ in range(1024):\n"
                         "    sys.stdout.buffer.write(chunk)")
    assert result.verdict is Verdict.OUTPUT_LIMIT and result.reason.startswith("output limit")
    assert len(result.stdout_tail) <= 4096


def test_deleting_a_file_outside_the_sandbox_fails_and_the_file_stays(sandbox: Sandbox, outside: Path) -> None:
    canary = outside / "canary.txt"
    result = sandbox.run(f"import os\nos.remove({str(canary)!r})\nopen({str(outside / 'new.txt')!r}, 'w')")
    assert result.verdict is Verdict.FAILED
    assert "Read-only file system" in result.reason or "Permission denied" in result.reason
    assert canary.read_text() == "still here" and sorted(p.name for p in outside.iterdir()) == ["canary.txt"]


def test_no_connection_reaches_127_0_0_1(sandbox: Sandbox) -> None:
    if Protection.NO_NETWORK not in sandbox.protections:
        pytest.skip("bwrap does not work here: the sandbox says the network is reachable")
    accepted: list[object] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.2)
        port = server.getsockname()[1]
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    accepted.append(server.accept())
                except OSError:
                    continue

        thread = threading.Thread(target=accept)
        thread.start()
        try:
            result = sandbox.run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)")
        finally:
            stop.set()
            thread.join()
    assert result.verdict is Verdict.FAILED and "ConnectionRefusedError" in result.reason
    assert accepted == []


def test_ssh_keys_of_the_user_are_not_readable(sandbox: Sandbox, outside: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    home = outside / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("SECRET KEY")
    home.chmod(0o700)
    monkeypatch.setenv("HOME", str(home))  # the user's home, as Starpad sees it
    program = (f"import os\nprint(os.listdir(os.path.expanduser('~/.ssh')) if os.path.isdir("
               f"os.path.expanduser('~/.ssh')) else 'no ~/.ssh')\n"
               f"print(open({str(home / '.ssh' / 'id_ed25519')!r}).read())")
    result = sandbox.run(program)
    assert result.verdict is Verdict.FAILED
    assert "FileNotFoundError" in result.reason or "PermissionError" in result.reason
    assert "SECRET" not in result.stdout_tail and "no ~/.ssh" in result.stdout_tail


def test_without_bwrap_the_missing_protections_are_named() -> None:
    box = Sandbox(SandboxConfig(timeout_s=1.5, use_bwrap=False))
    assert box.run("print(1)").passed
    assert {Protection.READ_ONLY_FS, Protection.NO_NETWORK, Protection.PID_NAMESPACE} <= set(box.missing)
    text = box.describe_missing()
    assert text is not None and "WITHOUT" in text and "no network" in text and "bubblewrap" in text


def test_programs_run_in_parallel_slots(sandbox: Sandbox) -> None:
    results: list[float] = []
    started = time.monotonic()
    threads = [threading.Thread(target=lambda: results.append(sandbox.run("import time\ntime.sleep(0.8)").seconds))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and time.monotonic() - started < 1.6 + 0.5
