"""Wiring between the widgets and the Qt-free completion session.

``CompletionSession`` (``app.core.session``) decides what to ask and what to show; this
object only translates: editor edits and caret moves in, the worker's signals in, one
QTimer for the session's deadlines, ghost text and status out. It holds no completion
state of its own, so the window and a script behave the same.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from app.core.engine import CompletionResult, PrefillResult
from app.core.ghost import Ghost
from app.core.session import (
    CompletionPhase,
    CompletionSession,
    RequestKind,
    RequestOutcome,
    RequestReport,
    SessionSettings,
)
from app.core.settings_schema import Settings
from app.gui.editor import CodeEditor
from app.gui.statusbar import StatusPanel
from app.gui.worker import EngineClient

log = logging.getLogger("starpad.window")


class CompletionBridge(QObject):
    """The session's view and clock in Qt terms (see the module docstring)."""

    #: Every finished user request (current or stale), with its token texts: the inspector.
    result_ready = Signal(object, object)

    def __init__(
        self,
        client: EngineClient,
        editor: CodeEditor,
        status: StatusPanel,
        settings: Settings,
        recent_files: Callable[[], Sequence[str]],
        not_an_edit: Callable[[], bool],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.client = client
        #: The window's settings object, read again before every explicit request.
        self._settings = settings
        self.editor = editor
        self.status = status
        #: True while the text changes without the user (a file opening, colours arriving).
        self._not_an_edit = not_an_edit
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.session = CompletionSession(
            runner=client, view=self, settings=SessionSettings.from_settings(settings), clock=time.monotonic,
            recent_files=recent_files,
        )
        worker = client.worker
        worker.completion_started.connect(self.on_started)
        worker.text_streamed.connect(self.on_text)
        worker.completion_finished.connect(self.on_finished)
        worker.completion_failed.connect(self.on_failed)
        worker.prefill_finished.connect(self.on_prefilled)
        editor.cursorPositionChanged.connect(self._on_caret_moved)
        editor.ghost_dismissed.connect(self.session.ghost_dismissed)
        editor.ghost_accepted.connect(self.session.ghost_accepted)

    # ------------------------------------------------------ window → session
    def configure(self, settings: Settings) -> None:
        self.session.configure(SessionSettings.from_settings(settings, self.session.settings.idle_prefill_ms))

    def open_document(self, doc_id: str, text: str, path: Path | None) -> None:
        """The editor now shows ``text`` (opened, reloaded, restored): not an edit."""
        self.editor.clear_ghost()
        self.session.open_document(doc_id, text, self.editor.textCursor().position(), path)

    def text_edited(self) -> None:
        """The user changed the text (the window has ruled out its own replacements)."""
        self.session.text_edited(self.editor.document_text(), self.editor.textCursor().position())

    def request_now(self) -> RequestOutcome:
        self.sync()
        return self.session.request_now()

    def sync(self) -> None:
        """Make sure the session has the current settings and the editor's exact text
        before it builds a request."""
        self.configure(self._settings)
        doc = self.session.current
        if doc is not None and not self.editor.loading:
            text = self.editor.document_text()
            if text != doc.text:
                log.warning("session text was out of date; resynchronised")
                self.session.open_document(doc.id, text, self.editor.textCursor().position(), doc.path)

    def _on_caret_moved(self) -> None:
        if self.session.current is not None and not self._not_an_edit():
            self.session.caret_moved(self.editor.textCursor().position())

    def shutdown(self) -> None:
        self.timer.stop()

    # ------------------------------------------------------ worker → session
    @Slot(int)
    def on_started(self, request_id: int) -> None:
        self.session.on_started(request_id)

    @Slot(int, str)
    def on_text(self, request_id: int, piece: str) -> None:
        self.session.on_text(request_id, piece)

    @Slot(int, object, object)
    def on_finished(self, request_id: int, result: CompletionResult, token_texts: dict[int, str]) -> None:
        self.result_ready.emit(result, token_texts)
        self.session.on_finished(request_id, result)

    @Slot(int, str)
    def on_failed(self, request_id: int, message: str) -> None:
        self.session.on_failed(request_id, message)

    @Slot(int, object)
    def on_prefilled(self, request_id: int, result: PrefillResult) -> None:
        self.session.on_prefilled(request_id, result)

    def _tick(self) -> None:
        self.session.tick()
        self.deadline_changed(self.session.next_deadline())  # a timer that fired early waits again

    # ------------------------------------------------ session → widgets (SessionView)
    def ghost_changed(self, document: str, ghost: Ghost | None) -> None:
        current = self.session.current
        if current is not None and current.id == document:
            self.editor.show_ghost(ghost)

    def phase_changed(self, phase: CompletionPhase, detail: str) -> None:
        if phase is CompletionPhase.WAITING:
            return  # the debounce: nothing worth a flicker
        if phase is CompletionPhase.PAUSED:
            self.status.set_state("idle", "· paused while comparing quants")
        elif phase is CompletionPhase.ERROR:
            self.status.set_state("error")
            self.status.showMessage(f"Completion failed: {detail}", 8000)
        else:
            self.status.set_state(phase.value, detail)

    def request_reported(self, report: RequestReport) -> None:
        if report.kind is RequestKind.PREFILL:
            self.status.show_prefill(report.stats, cancelled=report.stop_reason == "cancelled")
        else:
            self.status.show_stats(report.stats)

    def deadline_changed(self, deadline: float | None) -> None:
        if deadline is None:
            self.timer.stop()
            return
        self.timer.start(max(0, math.ceil((deadline - time.monotonic()) * 1000)))
