"""Run one untrusted Python program in its own locked-down process.

Completions are code a model wrote; scoring them means running them. Each program runs
in a fresh process, never Starpad's, with:

* a wall-clock timeout, after which its whole process tree is killed;
* ``RLIMIT_CPU``, ``RLIMIT_AS`` (memory), ``RLIMIT_FSIZE`` and a process-count limit;
* its output capped (a program printing a gigabyte is stopped, not buffered);
* an empty temporary folder as working folder, home and ``TMPDIR``, a clean environment.

Where ``bwrap`` (bubblewrap, Flatpak's sandbox) works, the program also sees the whole
filesystem read-only except that folder (a size-limited tmpfs), with ``/root``, ``/home``
and the user's home hidden, and runs in its own network namespace (no network at all,
not even 127.0.0.1), PID namespace (when the program's first process dies, the kernel
kills every process it started) and with no capabilities.

``RLIMIT_NPROC`` is never enforced for root. Started as root, each program therefore runs
under a dedicated unprivileged user id, one per concurrent slot, so the limit holds, a
fork bomb in one slot cannot starve another, and a killed tree is found by its uid. The
program itself is read from stdin by a small bootstrap that sets the limits first.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import os
import queue
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.core.errors import StarpadError

log = logging.getLogger("starpad.sandbox")

#: Dedicated user ids for programs when Starpad runs as root: one per process and slot
#: (``base + pid * 16 + slot``), so two Starpads never share one, never kill each
#: other's programs by uid, and never count against each other's process limit.
SANDBOX_UID_BASE = 1_000_000_000
_SLOTS_PER_PROCESS = 16
#: Output a passing HumanEval program never comes close to.
DEFAULT_OUTPUT_BYTES = 1024 * 1024
_STDERR_TAIL = 4096


class SandboxError(StarpadError):
    """No way to run programs at all (no usable Python interpreter)."""


class Protection(str, enum.Enum):
    OWN_PROCESS = "own process"
    TIMEOUT = "wall-clock timeout"
    CPU_LIMIT = "CPU time limit"
    MEMORY_LIMIT = "memory limit"
    PROCESS_LIMIT = "process-count limit"
    OUTPUT_CAP = "capped output"
    TEMP_FOLDER = "empty temporary folder as working folder and home"
    CLEAN_ENV = "clean environment"
    READ_ONLY_FS = "read-only filesystem"
    NO_NETWORK = "no network"
    PID_NAMESPACE = "own PID namespace"


class Verdict(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"  # the program raised or exited non-zero
    TIMEOUT = "timeout"
    CPU_LIMIT = "cpu_limit"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    KILLED = "killed"  # by a signal we did not send
    ERROR = "error"  # the sandbox could not run it


@dataclass(frozen=True)
class SandboxConfig:
    timeout_s: float = 3.0
    memory_bytes: int = 1024 * 1024 * 1024
    max_processes: int = 32
    output_bytes: int = DEFAULT_OUTPUT_BYTES
    file_bytes: int = 16 * 1024 * 1024  # largest file, and the tmpfs size under bwrap
    use_bwrap: bool = True
    #: Programs run at once (each in its own slot).
    workers: int = 2

    @property
    def cpu_seconds(self) -> int:
        return max(1, math.ceil(self.timeout_s) + 1)


@dataclass(frozen=True)
class Execution:
    verdict: Verdict
    reason: str
    seconds: float
    returncode: int | None = None
    stdout_tail: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED


# The bootstrap runs inside the sandbox: limits first, then the program from stdin.
_BOOT = r"""
import os, resource, sys
for _name, _value in __import__("json").loads(sys.argv[1]).items():
    _which = getattr(resource, _name, None)
    if _which is not None:
        try:
            resource.setrlimit(_which, tuple(_value))
        except (ValueError, OSError):
            pass
_src = sys.stdin.buffer.read()
_fd = os.open(os.devnull, os.O_RDONLY)
os.dup2(_fd, 0)
os.close(_fd)
sys.argv = ["program.py"]
del _name, _value, _which, _fd
_code = compile(_src, "program.py", "exec")
del _src
exec(_code, {"__name__": "__main__", "__builtins__": __builtins__, "__file__": "program.py"})
"""


@dataclass
class _Backend:
    interpreter: str
    bwrap: str | None
    notes: list[str] = field(default_factory=list)


class Sandbox:
    """Runs programs; thread-safe, up to ``config.workers`` at once.

    The first run (or ``check()``) probes what works on this machine: bwrap, then which
    Python the unprivileged sandbox user can execute. ``missing`` says what is not there.
    """

    def __init__(self, config: SandboxConfig = SandboxConfig()) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._backend: _Backend | None = None
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(min(_SLOTS_PER_PROCESS, max(1, config.workers))):
            self._slots.put(slot)
        self._as_root = hasattr(os, "geteuid") and os.geteuid() == 0

    # ---------------------------------------------------------- capabilities
    def check(self) -> None:
        """Probe now (raises SandboxError when no interpreter works)."""
        self._ensure_backend()

    @property
    def protections(self) -> frozenset[Protection]:
        backend = self._ensure_backend()
        have = {Protection.OWN_PROCESS, Protection.TIMEOUT, Protection.OUTPUT_CAP, Protection.TEMP_FOLDER,
                Protection.CLEAN_ENV}
        if _HAS_RESOURCE:
            have |= {Protection.CPU_LIMIT, Protection.MEMORY_LIMIT, Protection.PROCESS_LIMIT}
        if backend.bwrap is not None:
            have |= {Protection.READ_ONLY_FS, Protection.NO_NETWORK, Protection.PID_NAMESPACE}
        return frozenset(have)

    @property
    def missing(self) -> list[Protection]:
        have = self.protections
        return [p for p in Protection if p not in have]

    def describe_missing(self) -> str | None:
        """One plain sentence for the CLI and the window, or None when nothing is missing."""
        missing = self.missing
        if not missing:
            return None
        backend = self._ensure_backend()
        why = "; ".join(backend.notes) or "bwrap is not used"
        names = ", ".join(p.value for p in missing)
        text = (f"generated programs run WITHOUT: {names} ({why}). They can read your files and reach the "
                f"network; install bubblewrap (Debian/Ubuntu: apt install bubblewrap) for the full sandbox")
        if self._as_root and backend.bwrap is None:
            text += "; they run as an unprivileged user, so they cannot change root's files"
        return text

    # ---------------------------------------------------------------- running
    def run(self, program: str) -> Execution:
        """Run ``program``; never raises for anything the program does."""
        backend = self._ensure_backend()
        slot = self._slots.get()
        try:
            return self._run(program, backend, slot)
        finally:
            self._slots.put(slot)

    def _uid(self, slot: int) -> int | None:
        return SANDBOX_UID_BASE + os.getpid() * _SLOTS_PER_PROCESS + slot if self._as_root else None

    def _rlimits(self, uid: int | None) -> dict[str, tuple[int, int]]:
        c = self.config
        limits = {
            "RLIMIT_CPU": (c.cpu_seconds, c.cpu_seconds + 1),
            "RLIMIT_AS": (c.memory_bytes, c.memory_bytes),
            "RLIMIT_FSIZE": (c.file_bytes, c.file_bytes),
            "RLIMIT_CORE": (0, 0),
            "RLIMIT_NOFILE": (256, 256),
        }
        # RLIMIT_NPROC counts every task of the real user id: a dedicated uid starts at 0,
        # the user's own uid already has their desktop's processes and threads.
        base = 0 if uid is not None else _tasks_of(os.getuid()) if hasattr(os, "getuid") else 0
        limits["RLIMIT_NPROC"] = (base + c.max_processes, base + c.max_processes)
        return limits

    def _command(self, backend: _Backend, work: Path, uid: int | None) -> list[str]:
        boot = [backend.interpreter, "-I", "-S", "-c", _BOOT, json.dumps(self._rlimits(uid))]
        if backend.bwrap is None:
            return boot
        args = [backend.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        hidden = _hidden_dirs()
        for path in hidden:
            args += ["--tmpfs", path]
        prefix = str(Path(backend.interpreter).resolve().parents[1])
        if any(prefix == h or prefix.startswith(h.rstrip("/") + "/") for h in hidden):
            args += ["--ro-bind", prefix, prefix]  # the interpreter itself stays visible
        args += ["--size", str(self.config.file_bytes), "--tmpfs", str(work), "--chdir", str(work),
                 "--clearenv", *_env_args(work), "--"]
        return args + boot

    def _run(self, program: str, backend: _Backend, slot: int) -> Execution:
        uid = self._uid(slot)
        work = Path(tempfile.mkdtemp(prefix="starpad-eval-"))
        started = time.monotonic()
        try:
            if uid is not None:
                os.chown(work, uid, uid)
            try:
                proc = subprocess.Popen(
                    self._command(backend, work, uid),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    cwd=work, env=_clean_env(work), start_new_session=True,
                    # Root only: the dedicated uid (set in the child, in C: no preexec_fn, thread-safe).
                    user=uid, group=uid, extra_groups=[] if uid is not None else None,
                )
            except OSError as exc:
                return Execution(Verdict.ERROR, f"sandbox error: cannot start: {exc}", time.monotonic() - started)
            try:
                return self._supervise(proc, program, uid, started)
            finally:
                _kill_tree(proc, uid)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _supervise(self, proc: subprocess.Popen[bytes], program: str, uid: int | None, started: float) -> Execution:
        c = self.config
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            proc.stdin.write(program.encode("utf-8", errors="surrogatepass"))
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # it died before reading: its exit status and stderr say why
        deadline = started + c.timeout_s
        total = 0
        stdout_tail = bytearray()
        stderr_tail = bytearray()
        open_streams = 2
        over: Verdict | None = None
        reaped = False
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ, stdout_tail)
            selector.register(proc.stderr, selectors.EVENT_READ, stderr_tail)
            while open_streams:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    over = Verdict.TIMEOUT
                    break
                if not reaped and proc.poll() is not None:
                    # The program is done; a child it left behind must not hold the pipes open.
                    reaped = True
                    _kill_tree(proc, uid, wait=False)
                events = selector.select(timeout=min(remaining, 0.05))
                for key, _ in events:
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        open_streams -= 1
                        continue
                    total += len(chunk)
                    tail: bytearray = key.data
                    tail += chunk
                    del tail[:-_STDERR_TAIL]
                if total > c.output_bytes:
                    over = Verdict.OUTPUT_LIMIT
                    break
        if over is not None:
            _kill_tree(proc, uid)
        try:
            returncode = proc.wait(timeout=max(0.5, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            over = over or Verdict.TIMEOUT
            _kill_tree(proc, uid)
            returncode = proc.wait()
        seconds = time.monotonic() - started
        out = stdout_tail.decode("utf-8", errors="replace")
        err = stderr_tail.decode("utf-8", errors="replace")
        if over is Verdict.TIMEOUT:
            return Execution(over, f"timed out after {c.timeout_s:g} s", seconds, returncode, out)
        if over is Verdict.OUTPUT_LIMIT:
            return Execution(over, f"output limit: more than {c.output_bytes:,} bytes", seconds, returncode, out)
        return _judge(returncode, err, out, seconds, c)

    # ----------------------------------------------------------------- probing
    def _ensure_backend(self) -> _Backend:
        with self._lock:
            if self._backend is None:
                self._backend = self._probe()
                log.info("sandbox: python %s, bwrap %s; %s", self._backend.interpreter, self._backend.bwrap,
                         "; ".join(self._backend.notes) or "all protections")
            return self._backend

    def _probe(self) -> _Backend:
        """The best working setup: bwrap with the first interpreter that runs inside it,
        else no bwrap. A probe is a real run of ``print(6 * 7)``."""
        candidates = _interpreters()
        notes: list[str] = []
        bwrap = shutil.which("bwrap") if self.config.use_bwrap and sys.platform.startswith("linux") else None
        if not self.config.use_bwrap:
            notes.append("bwrap turned off")
        elif bwrap is None:
            notes.append("bwrap is not installed")
        tries = [(b, i) for b in ([bwrap] if bwrap else []) + [None] for i in candidates]
        errors: dict[str, str] = {}
        for wrapper, interpreter in tries:
            backend = _Backend(interpreter, wrapper, list(notes))
            result = self._run("print(6 * 7)", backend, 0)
            if result.passed and result.stdout_tail.strip() == "42":
                if bwrap is not None and wrapper is None:
                    backend.notes.append(f"bwrap does not work here: {errors.get(bwrap, 'unknown error')}")
                return backend
            errors.setdefault(wrapper or interpreter, result.reason)
            log.info("sandbox probe failed with %s %s: %s", wrapper, interpreter, result.reason)
        raise SandboxError("no Python interpreter can run the generated programs here: "
                           + "; ".join(f"{k}: {v}" for k, v in errors.items()))


def _judge(returncode: int, err: str, out: str, seconds: float, c: SandboxConfig) -> Execution:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    if returncode == 0:
        return Execution(Verdict.PASSED, "passed", seconds, returncode, out)
    # bwrap reports a child killed by signal N as exit status 128 + N.
    sig = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if sig == getattr(signal, "SIGXCPU", -1):
        return Execution(Verdict.CPU_LIMIT, f"CPU limit: more than {c.cpu_seconds} s of CPU", seconds, returncode, out)
    if last.startswith("MemoryError"):
        return Execution(Verdict.MEMORY_LIMIT, f"memory limit ({c.memory_bytes // 2**20:,} MiB): MemoryError",
                         seconds, returncode, out)
    if sig and "Traceback" not in err:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return Execution(Verdict.KILLED, f"killed by {name}", seconds, returncode, out)
    if last.startswith("bwrap:"):
        return Execution(Verdict.ERROR, f"sandbox error: {last}", seconds, returncode, out)
    detail = last[:300] if last else f"exit status {returncode}"
    return Execution(Verdict.FAILED, f"failed: {detail}", seconds, returncode, out)


try:
    import resource  # noqa: F401 - POSIX only

    _HAS_RESOURCE = True
except ImportError:  # Windows
    _HAS_RESOURCE = False


def _interpreters() -> list[str]:
    """Pythons to try, best first: this one (not when frozen: that is Starpad itself),
    then the system's. A dedicated sandbox user may not reach one under /root."""
    found: list[str] = []
    if not getattr(sys, "frozen", False):
        base = getattr(sys, "_base_executable", None) or sys.executable
        found.append(os.path.realpath(base))
    for name in ("/usr/bin/python3", shutil.which("python3"), shutil.which("python")):
        if name and os.path.exists(name) and os.path.realpath(name) not in found:
            found.append(os.path.realpath(name))
    return found


def _hidden_dirs() -> list[str]:
    hidden = ["/root", "/home"]
    home = os.path.realpath(os.path.expanduser("~"))
    if home not in ("/", *hidden) and os.path.isdir(home) and not any(home.startswith(h + "/") for h in hidden):
        hidden.append(home)
    return [h for h in hidden if os.path.isdir(h)]


def _clean_env(work: Path) -> dict[str, str]:
    return {"HOME": str(work), "TMPDIR": str(work), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}


def _env_args(work: Path) -> list[str]:
    args: list[str] = []
    for key, value in _clean_env(work).items():
        args += ["--setenv", key, value]
    return args


def _tasks_of(uid: int) -> int:
    """Tasks (threads count: the kernel's RLIMIT_NPROC counts them) of ``uid`` now."""
    count = 0
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


def _pids_of(uid: int) -> list[int]:
    """Live processes of ``uid`` (zombies are already dead: only their parent can reap them)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid != uid:
                    continue
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    state = stat.read().rsplit(b")", 1)[1].split()[0]
                if state not in (b"Z", b"X"):
                    pids.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return pids


def _kill_tree(proc: subprocess.Popen[bytes], uid: int | None, wait: bool = True) -> None:
    """Kill the program and everything it started: its session's process group, and as
    root every process of its dedicated uid (a program that left the group is still
    found). Under bwrap killing the first process ends the PID namespace as well."""
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if uid is not None:
        for _ in range(50):  # a fork bomb forks while we kill: repeat until none is left
            pids = _pids_of(uid)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if not wait:
                break
            time.sleep(0.01)
    if wait:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("sandboxed process %d did not exit after SIGKILL", proc.pid)
