"""The inference thread: one QObject on one QThread owns the engine.

The GUI never touches the engine. It calls ``EngineClient`` (which lives in the GUI
thread), which cancels whatever is outdated — thread-safe flags, honoured within one
token or one prompt batch — and queues work to ``EngineWorker`` through signals.
Results come back only through signals, tagged with the request id, so the GUI can
drop anything that is no longer the newest request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.core.engine import CancelToken, CompletionRequest, CompletionResult, Engine, EngineConfig
from app.core.errors import CancelledError, StarpadError

log = logging.getLogger("starpad.worker")


@dataclass(frozen=True)
class _Job:
    request_id: int
    request: CompletionRequest
    cancel: CancelToken


class EngineWorker(QObject):
    """Runs in the worker thread. Public slots are only ever invoked via queued signals."""

    load_progress = Signal(float)
    model_loaded = Signal(object, float)  # ModelInfo, seconds
    model_failed = Signal(str)
    completion_started = Signal(int)
    text_streamed = Signal(int, str)
    completion_finished = Signal(int, object, object)  # request id, CompletionResult, {token id: text}
    completion_failed = Signal(int, str)

    def __init__(self) -> None:
        super().__init__()
        self._engine: Engine | None = None

    def _get_engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine()
        return self._engine

    @Slot(str, object, object)
    def load(self, path: str, config: EngineConfig, cancel: CancelToken) -> None:
        if cancel.cancelled:
            return
        try:
            info = self._get_engine().load(path, config, progress=self.load_progress.emit, cancel=cancel)
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
        self.model_loaded.emit(info, self._get_engine().load_seconds)

    @Slot(object)
    def complete(self, job: _Job) -> None:
        if job.cancel.cancelled:  # superseded while queued: never started
            return
        engine = self._get_engine()
        if not engine.is_loaded:
            self.completion_failed.emit(job.request_id, "no model is loaded")
            return
        self.completion_started.emit(job.request_id)
        try:
            result: CompletionResult = engine.complete(
                job.request, on_text=lambda piece: self.text_streamed.emit(job.request_id, piece), cancel=job.cancel
            )
        except StarpadError as exc:
            self.completion_failed.emit(job.request_id, str(exc))
            return
        except Exception as exc:  # noqa: BLE001
            log.exception("unexpected completion failure")
            self.completion_failed.emit(job.request_id, f"unexpected error: {exc}")
            return
        # Token texts for the prompt inspector, made here: the GUI never calls the engine.
        token_texts = {token: engine.token_text(token) for token in set(result.prompt.tokens)}
        self.completion_finished.emit(job.request_id, result, token_texts)

    def close_engine(self) -> None:
        """Free llama.cpp memory; only after the thread has stopped."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None


class EngineClient(QObject):
    """The GUI thread's handle on the worker: newest request wins."""

    _load_requested = Signal(str, object, object)
    _complete_requested = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("starpad-engine")
        self.worker = EngineWorker()
        self.worker.moveToThread(self._thread)
        self._load_requested.connect(self.worker.load)
        self._complete_requested.connect(self.worker.complete)
        self._load_cancel: CancelToken | None = None
        self._completion_cancel: CancelToken | None = None
        self._next_id = 0
        self.latest_request_id = 0
        self._thread.start()

    def load_model(self, path: str, config: EngineConfig) -> None:
        self.cancel_completion()
        if self._load_cancel is not None:
            self._load_cancel.cancel()
        self._load_cancel = CancelToken()
        self._load_requested.emit(path, config, self._load_cancel)

    def cancel_load(self) -> None:
        if self._load_cancel is not None:
            self._load_cancel.cancel()

    def request_completion(self, request: CompletionRequest) -> int:
        """Queue ``request``; every older request is cancelled. Returns its id."""
        self.cancel_completion()
        self._next_id += 1
        self.latest_request_id = self._next_id
        self._completion_cancel = CancelToken()
        self._complete_requested.emit(_Job(self._next_id, request, self._completion_cancel))
        return self._next_id

    def cancel_completion(self) -> None:
        if self._completion_cancel is not None:
            self._completion_cancel.cancel()
            self._completion_cancel = None

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
