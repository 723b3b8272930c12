"""The inference thread: one QObject on one QThread owns the engine.

The GUI never touches the engine. The completion session (``app.core.session``) decides
what to ask; ``EngineClient`` (GUI thread) puts its jobs into a ``JobQueue`` — which
cancels whatever they supersede through thread-safe flags, honoured within one token or
one prompt batch — and wakes ``EngineWorker``, which runs the job the queue picks: the
newest USER request first, a PREFILL only when no user is waiting. Results come back
only through signals, tagged with the request id, so the session can drop anything that
is no longer the newest request.

The engine is the local llama.cpp one after ``load``, or a remote one (``app.core.remote``)
after ``connect_server``: everything after that goes through ``CompletionEngine`` and does
not know which. Nothing is sent anywhere unless a server profile was chosen.
"""

from __future__ import annotations

import dataclasses
import logging

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.core.engine import CancelToken, CompletionResult, Engine, EngineConfig, PrefillResult
from app.core.engine_api import CompletionEngine
from app.core.errors import CancelledError, StarpadError
from app.core.memory_fit import offload_for_model
from app.core.model_info import model_info
from app.core.remote.profile import ServerProfile
from app.core.session.jobs import JobQueue, RequestKind, SessionJob
from app.core.session.runner import run_job

log = logging.getLogger("starpad.worker")


class EngineWorker(QObject):
    """Runs in the worker thread. Public slots are only ever invoked via queued signals."""

    load_progress = Signal(float)
    model_loaded = Signal(object, float)  # ModelInfo, seconds
    #: Before a load with a GPU-layers setting: the plan for it (OffloadPlan, or None: CPU).
    offload_planned = Signal(object)
    model_failed = Signal(str)
    server_connected = Signal(object, float)  # RemoteDescription, seconds
    completion_started = Signal(int)  # user requests only
    text_streamed = Signal(int, str)
    completion_finished = Signal(int, object, object)  # request id, CompletionResult, {token id: text}
    completion_failed = Signal(int, str)  # user requests and prefills
    prefill_started = Signal(int)
    prefill_finished = Signal(int, object)  # request id, PrefillResult

    def __init__(self, queue: JobQueue) -> None:
        super().__init__()
        self._engine: CompletionEngine | None = None
        self._queue = queue

    def _current(self) -> CompletionEngine:
        """The engine jobs run on: local or remote."""
        if self._engine is None:
            self._engine = Engine()
        return self._engine

    def _get_engine(self) -> Engine:
        """The local llama.cpp engine (tests look into its cache); an error while a server is used."""
        engine = self._current()
        if not isinstance(engine, Engine):
            raise RuntimeError("a remote engine is in use")
        return engine

    def _adopt(self, engine: CompletionEngine) -> None:
        """Make ``engine`` the one jobs run on, freeing the one it replaces."""
        if self._engine is not None and self._engine is not engine:
            self._engine.close()
        self._engine = engine

    @Slot(str, object, object, object)
    def load(self, path: str, config: EngineConfig, cancel: CancelToken, gpu_layers: int | None = None) -> None:
        """Load ``path``. ``gpu_layers``: the user's setting (auto: what fits in free VRAM),
        turned into llama.cpp's ``n_gpu_layers`` here, not on the GUI thread: planning reads
        the file's header, the whole vocabulary included (a third of a second for 49K tokens)."""
        if cancel.cancelled:
            return
        if gpu_layers is not None:
            try:
                plan = offload_for_model(gpu_layers, model_info(path), config.n_ctx)
            except StarpadError:
                plan = None  # the load itself reports what is wrong with the file
            self.offload_planned.emit(plan)
            config = dataclasses.replace(config, n_gpu_layers=plan.n_gpu_layers if plan else 0)
        try:
            # A remote engine stays in use until the local model has loaded.
            engine = self._engine if isinstance(self._engine, Engine) else Engine()
            info = engine.load(path, config, progress=self.load_progress.emit, cancel=cancel)
        except CancelledError:
            log.info("model load cancelled")
            return
        except StarpadError as exc:
            self.model_failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the UI must survive anything llama.cpp throws
            log.exception("unexpected load failure")
            self.model_failed.emit(f"unexpected error while loading: {exc}")
            return
        self._adopt(engine)
        self.model_loaded.emit(info, engine.load_seconds)

    @Slot(object, object)
    def connect_server(self, profile: ServerProfile, cancel: CancelToken) -> None:
        """Switch to a remote engine; the current engine stays if connecting fails."""
        from app.core.remote.factory import connect

        if cancel.cancelled:
            return
        try:
            remote = connect(profile, cancel)
        except CancelledError:
            log.info("connecting to %s cancelled", profile.name)
            return
        except StarpadError as exc:
            self.model_failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the UI must survive any server
            log.exception("unexpected failure connecting to %s", profile.name)
            self.model_failed.emit(f"unexpected error while connecting: {exc}")
            return
        self._adopt(remote)  # frees the local model: the remote one is used now
        self.server_connected.emit(remote.describe(), remote.load_seconds)

    @Slot()
    def run_next(self) -> None:
        """One wake-up per submitted job: run whichever job the queue says comes first now."""
        queued = self._queue.pop()
        if queued is None:  # superseded while queued: never started
            return
        try:
            engine = self._current()
            if not engine.is_loaded:
                self.completion_failed.emit(queued.request_id, "no model is loaded")
                return
            if queued.kind is RequestKind.PREFILL:
                self.prefill_started.emit(queued.request_id)
            run_job(engine, queued, self)
        finally:
            self._queue.done(queued)

    # The session's answer side, called by run_job in this thread: signals carry it over.
    def on_started(self, request_id: int) -> None:
        self.completion_started.emit(request_id)

    def on_text(self, request_id: int, piece: str) -> None:
        self.text_streamed.emit(request_id, piece)

    def on_finished(self, request_id: int, result: CompletionResult) -> None:
        # Token texts for the prompt inspector, made here: the GUI never calls the engine.
        engine = self._current()
        token_texts = {token: engine.token_text(token) for token in set(result.prompt.tokens)}
        self.completion_finished.emit(request_id, result, token_texts)

    def on_prefilled(self, request_id: int, result: PrefillResult) -> None:
        self.prefill_finished.emit(request_id, result)

    def on_failed(self, request_id: int, message: str) -> None:
        self.completion_failed.emit(request_id, message)

    def close_engine(self) -> None:
        """Free llama.cpp memory; only after the thread has stopped."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None


class EngineClient(QObject):
    """The GUI thread's handle on the worker; the session's ``JobRunner``."""

    _load_requested = Signal(str, object, object, object)
    _connect_requested = Signal(object, object)
    _wake = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("starpad-engine")
        self.queue = JobQueue()
        self.worker = EngineWorker(self.queue)
        self.worker.moveToThread(self._thread)
        self._load_requested.connect(self.worker.load)
        self._connect_requested.connect(self.worker.connect_server)
        self._wake.connect(self.worker.run_next)
        self._load_cancel: CancelToken | None = None
        #: The newest user request submitted (0: none yet).
        self.latest_request_id = 0
        self._thread.start()

    def load_model(self, path: str, config: EngineConfig, gpu_layers: int | None = None) -> None:
        """Load ``path`` in the worker; ``gpu_layers``: plan the offload from this setting
        there (see ``EngineWorker.load``) instead of using ``config.n_gpu_layers``."""
        self.cancel_completion()
        if self._load_cancel is not None:
            self._load_cancel.cancel()
        self._load_cancel = CancelToken()
        self._load_requested.emit(path, config, self._load_cancel, gpu_layers)

    def connect_server(self, profile: ServerProfile) -> None:
        """Use a remote server from now on (``worker.server_connected`` or ``model_failed`` answers)."""
        self.cancel_completion()
        if self._load_cancel is not None:
            self._load_cancel.cancel()
        self._load_cancel = CancelToken()
        self._connect_requested.emit(profile, self._load_cancel)

    def cancel_load(self) -> None:
        if self._load_cancel is not None:
            self._load_cancel.cancel()

    def submit(self, job: SessionJob) -> None:
        """Queue ``job`` (a user request cancels every older job, a prefill older prefills)."""
        self.queue.push(job)
        if job.kind is RequestKind.USER:
            self.latest_request_id = job.request_id
        self._wake.emit()

    def cancel(self, request_id: int) -> None:
        self.queue.cancel(request_id)

    def cancel_completion(self) -> None:
        """Stop every job, queued or running."""
        self.queue.cancel_all()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel everything, stop the thread, free the model. True if it stopped in time."""
        self.cancel_completion()
        self.cancel_load()
        self._thread.quit()
        stopped = self._thread.wait(timeout_ms)
        if stopped:
            self.worker.close_engine()
        else:
            log.error("engine thread did not stop within %d ms", timeout_ms)
        return bool(stopped)
