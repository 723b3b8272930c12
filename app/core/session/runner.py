"""Running session jobs on an engine in the caller's own thread: tests and the benchmark.

The window's runner is the Qt worker (``app.gui.worker``); this one shares its policy
(``JobQueue``: newest user request first, prefill only when idle) but runs a job only
when asked to, so a script decides exactly when the engine works.
"""

from __future__ import annotations

import logging
from typing import Protocol

from app.core.engine import CompletionResult, PrefillResult
from app.core.engine_api import CompletionEngine
from app.core.errors import StarpadError
from app.core.session.jobs import JobQueue, QueuedJob, RequestKind, SessionJob

log = logging.getLogger("starpad.session")


class JobListener(Protocol):
    """The session's answer side (``CompletionSession`` implements it)."""

    def on_started(self, request_id: int) -> None: ...

    def on_text(self, request_id: int, piece: str) -> None: ...

    def on_finished(self, request_id: int, result: CompletionResult) -> None: ...

    def on_prefilled(self, request_id: int, result: PrefillResult) -> None: ...

    def on_failed(self, request_id: int, message: str) -> None: ...


class EngineRunner:
    """A ``JobRunner`` over ``engine``; ``attach`` the session, then ``run_next``/``run_all``."""

    def __init__(self, engine: CompletionEngine) -> None:
        self.engine = engine
        self.queue = JobQueue()
        #: Every job ever submitted, in order (what tests and the benchmark look at).
        self.submitted: list[SessionJob] = []
        self._listener: JobListener | None = None

    def attach(self, listener: JobListener) -> None:
        self._listener = listener

    def submit(self, job: SessionJob) -> None:
        self.submitted.append(job)
        self.queue.push(job)

    def cancel(self, request_id: int) -> None:
        self.queue.cancel(request_id)

    def run_next(self) -> SessionJob | None:
        """Run the job the queue picks (None: nothing to run)."""
        queued = self.queue.pop()
        if queued is None:
            return None
        try:
            run_job(self.engine, queued, self._require())
        finally:
            self.queue.done(queued)
        return queued.job

    def run_all(self) -> list[SessionJob]:
        ran = []
        while (job := self.run_next()) is not None:
            ran.append(job)
        return ran

    def _require(self) -> JobListener:
        if self._listener is None:
            raise RuntimeError("attach a session before running jobs")
        return self._listener


def run_job(engine: CompletionEngine, queued: QueuedJob, listener: JobListener) -> None:
    """Run one job and answer ``listener``; failures become ``on_failed``, never exceptions."""
    job = queued.job
    try:
        if job.kind is RequestKind.PREFILL:
            listener.on_prefilled(job.request_id, engine.prefill(job.request, cancel=queued.cancel))
            return
        listener.on_started(job.request_id)
        result = engine.complete(
            job.request, on_text=lambda piece: listener.on_text(job.request_id, piece), cancel=queued.cancel
        )
    except StarpadError as exc:
        listener.on_failed(job.request_id, str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - one bad request must not end the session
        log.exception("unexpected failure in request %d", job.request_id)
        listener.on_failed(job.request_id, f"unexpected error: {exc}")
        return
    listener.on_finished(job.request_id, result)
