"""Wiring between the editors and the Qt-free completion session.

``CompletionSession`` (``app.core.session``) decides what to ask and what to show; this
object only translates: each tab's edits and caret moves in, the worker's signals in, one
QTimer for the session's deadlines, ghost text and status out. It holds no completion
state of its own, so the window and a script behave the same.

Several editors (one per tab) are attached, each under the session's document id. Only
the current document's editor ever gets a ghost: the session drops a result for a
document that is no longer current (by request id), and a ghost the session sends for
another document is never painted into the editor on screen.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal, SignalInstance, Slot

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

log = logging.getLogger("starpad.completion")


@dataclass
class _Attached:
    """One editor attached under a document id, and its signal connections."""

    editor: CodeEditor
    #: True while the text changes without the user (a file opening, colours arriving).
    not_an_edit: Callable[[], bool]
    #: (signal, slot) pairs, to disconnect exactly these.
    connections: list[tuple[SignalInstance, Callable[..., object]]]


class CompletionBridge(QObject):
    """The session's view and clock in Qt terms (see the module docstring)."""

    #: Every finished user request (current or stale), with its token texts: the inspector.
    result_ready = Signal(object, object)

    def __init__(
        self,
        client: EngineClient,
        status: StatusPanel,
        settings: Settings,
        recent_files: Callable[[], Sequence[str]],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.client = client
        #: The window's settings object, read again before every explicit request.
        self._settings = settings
        self.status = status
        self._attached: dict[str, _Attached] = {}
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

    # ----------------------------------------------------------- editors
    def attach(self, doc_id: str, editor: CodeEditor, not_an_edit: Callable[[], bool]) -> None:
        """Route ``editor``'s caret moves, accepts and dismissals to document ``doc_id``."""
        self.detach_editor(doc_id)
        connections: list[tuple[SignalInstance, Callable[..., object]]] = [
            (editor.cursorPositionChanged, functools.partial(self._on_caret_moved, doc_id)),
            (editor.ghost_dismissed, functools.partial(self._on_dismissed, doc_id)),
            (editor.ghost_accepted, self.session.ghost_accepted),
        ]
        for signal, slot in connections:
            signal.connect(slot)
        self._attached[doc_id] = _Attached(editor, not_an_edit, connections)

    def detach_editor(self, doc_id: str) -> None:
        attached = self._attached.pop(doc_id, None)
        if attached is not None:
            for signal, slot in attached.connections:
                with contextlib.suppress(RuntimeError, TypeError):  # the editor is already gone
                    signal.disconnect(slot)

    def close_document(self, doc_id: str) -> None:
        """A tab closed: its editor and session state go (a request for it is cancelled)."""
        self.detach_editor(doc_id)
        self.session.close_document(doc_id)

    @property
    def editor(self) -> CodeEditor | None:
        """The current document's editor."""
        current = self.session.current
        attached = self._attached.get(current.id) if current is not None else None
        return attached.editor if attached is not None else None

    # ------------------------------------------------------ window → session
    def configure(self, settings: Settings) -> None:
        self.session.configure(SessionSettings.from_settings(settings, self.session.settings.idle_prefill_ms))

    def open_document(self, doc_id: str, text: str, path: Path | None) -> None:
        """The document's editor now shows ``text`` (opened, reloaded, restored): not an edit.

        It becomes the session's current document.
        """
        attached = self._attached[doc_id]
        attached.editor.clear_ghost()
        self.session.open_document(doc_id, text, attached.editor.textCursor().position(), path)

    def switch_to(self, doc_id: str, path: Path | None) -> None:
        """Another tab is in front: the session's current document follows (the engine keeps
        a KV snapshot per document). A document the session forgot (it keeps a bounded
        number) is opened again from its editor's text."""
        attached = self._attached.get(doc_id)
        if attached is None:
            return
        if doc_id in self.session.documents:
            self.session.switch_to(doc_id)
            if not attached.editor.loading:
                self._resync(doc_id)  # text and caret as the editor has them
        else:
            text = attached.editor.document_text()
            self.session.open_document(doc_id, text, attached.editor.textCursor().position(), path)

    def text_edited(self, doc_id: str) -> None:
        """The user changed the text (the window has ruled out its own replacements)."""
        attached = self._attached.get(doc_id)
        if attached is None or doc_id not in self.session.documents:
            return
        editor = attached.editor
        self.session.text_edited(editor.document_text(), editor.textCursor().position(), doc_id)

    def request_now(self) -> RequestOutcome:
        self.sync()
        return self.session.request_now()

    def sync(self) -> None:
        """Make sure the session has the current settings and the editor's exact text
        before it builds a request."""
        self.configure(self._settings)
        doc = self.session.current
        if doc is not None:
            self._resync(doc.id)

    def _resync(self, doc_id: str) -> None:
        attached = self._attached.get(doc_id)
        if attached is None or attached.editor.loading:
            return
        doc = self.session.document(doc_id)
        text = attached.editor.document_text()
        if text != doc.text:
            log.warning("session text was out of date; resynchronised")
            self.session.open_document(doc.id, text, attached.editor.textCursor().position(), doc.path)
        elif doc.caret != attached.editor.textCursor().position():  # placed by the window (a reopened tab)
            self.session.caret_moved(attached.editor.textCursor().position(), doc_id)

    def _on_caret_moved(self, doc_id: str) -> None:
        attached = self._attached.get(doc_id)
        current = self.session.current
        if attached is None or current is None or current.id != doc_id or attached.not_an_edit():
            return
        self.session.caret_moved(attached.editor.textCursor().position(), doc_id)

    def _on_dismissed(self, doc_id: str) -> None:
        current = self.session.current
        if current is not None and current.id == doc_id:
            self.session.ghost_dismissed()

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
        attached = self._attached.get(document)
        if attached is None:
            return
        if ghost is None:
            attached.editor.clear_ghost()
            return
        current = self.session.current
        if current is not None and current.id == document:
            attached.editor.show_ghost(ghost)  # never into another tab's editor

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
