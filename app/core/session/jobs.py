"""What the session asks the engine thread to do, and the order it is done in.

The session decides *what* to evaluate; a runner (the Qt worker, or ``EngineRunner`` for
tests and the benchmark) owns the engine and runs one job at a time. ``JobQueue`` holds
the policy both share, so the window and a script schedule identically:

* the newest USER request wins: it cancels every older job, queued or running;
* a PREFILL runs only when no USER request is waiting, and a USER request cancels a
  running prefill at once (the engine's abort callback stops it within a batch);
* a newer prefill replaces an older one (the caret moved on).

Thread-safe: one thread pushes and cancels, another pops.
"""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass, field

from app.core.engine import CancelToken, CompletionRequest

log = logging.getLogger("starpad.session")


class RequestKind(enum.Enum):
    """Why the engine is asked: someone is waiting (USER), or it is idle-time work (PREFILL)."""

    USER = "user"
    PREFILL = "prefill"


@dataclass(frozen=True)
class SessionJob:
    """One request of the session to its runner; ``request_id`` tags every answer."""

    request_id: int
    kind: RequestKind
    request: CompletionRequest


@dataclass(frozen=True)
class QueuedJob:
    """A job with the flag that stops it (set from any thread)."""

    job: SessionJob
    cancel: CancelToken = field(default_factory=CancelToken)

    @property
    def request_id(self) -> int:
        return self.job.request_id

    @property
    def kind(self) -> RequestKind:
        return self.job.kind


class JobQueue:
    """Newest user request first, prefill only when idle (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: list[QueuedJob] = []
        self._running: QueuedJob | None = None

    def push(self, job: SessionJob) -> QueuedJob:
        """Queue ``job``, cancelling whatever it supersedes; the queued form is returned."""
        queued = QueuedJob(job)
        with self._lock:
            if job.kind is RequestKind.USER:
                superseded = [*self._queued, *([self._running] if self._running is not None else [])]
                self._queued = []
            else:
                superseded = [q for q in self._queued if q.kind is RequestKind.PREFILL]
                self._queued = [q for q in self._queued if q.kind is not RequestKind.PREFILL]
                if self._running is not None and self._running.kind is RequestKind.PREFILL:
                    superseded.append(self._running)
            for old in superseded:
                old.cancel.cancel()
            self._queued.append(queued)
        return queued

    def cancel(self, request_id: int) -> None:
        """Stop one job wherever it is; a finished or unknown id is ignored."""
        with self._lock:
            for queued in [*self._queued, *([self._running] if self._running is not None else [])]:
                if queued.request_id == request_id:
                    queued.cancel.cancel()
            self._queued = [q for q in self._queued if q.request_id != request_id]

    def cancel_all(self) -> None:
        with self._lock:
            for queued in [*self._queued, *([self._running] if self._running is not None else [])]:
                queued.cancel.cancel()
            self._queued = []

    def pop(self) -> QueuedJob | None:
        """The job to run now (it becomes the running one), or None when there is nothing.

        The newest USER request comes before any prefill; cancelled jobs are skipped.
        """
        with self._lock:
            self._queued = [q for q in self._queued if not q.cancel.cancelled]
            users = [q for q in self._queued if q.kind is RequestKind.USER]
            chosen = users[-1] if users else (self._queued[-1] if self._queued else None)
            if chosen is not None:
                self._queued.remove(chosen)
            self._running = chosen
            return chosen

    def done(self, queued: QueuedJob) -> None:
        """``queued`` returned: it is no longer running."""
        with self._lock:
            if self._running is queued:
                self._running = None

    @property
    def running(self) -> QueuedJob | None:
        with self._lock:
            return self._running

    def __len__(self) -> int:
        with self._lock:
            return len(self._queued)
