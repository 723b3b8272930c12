"""The completion session: what to ask the engine, when, and what ghost text to show.

One session per window (or per benchmark run). It holds every open document's state —
text, caret, the ghost shown, a cache of completions — and turns the editor's events
(edits, caret moves, Tab, Esc, Ctrl+Space) and the clock into jobs for a runner and
ghosts for a view. It imports no Qt: the window forwards events and paints what comes
back, and tests and ``main.py bench`` drive the very same logic with a fake clock.

Rules it keeps (each was a bug or a request once):

* A document opened, switched to or reloaded, and a model finishing its load, are not
  edits: no completion is asked, only idle-time prefill.
* Typing what the ghost shows consumes it without a new request; typing anything else
  drops it and asks again after the debounce (default 250 ms).
* A place answered before — typed ahead into a completion, come back to after a click,
  a wrong character deleted — is served from the completion cache, without the engine.
* Each request has an id; a result for anything but the newest is dropped.
* When the user is idle (1 s by default) at a caret the engine has not evaluated, a
  PREFILL job evaluates that prompt so the next real request reuses the KV cache; a user
  request supersedes it at once.
* Nothing is asked while a quant comparison runs (two llama.cpp contexts would starve).
* The repository block (``app.core.repo_context``) of the current document never changes
  on a keystroke or a caret move, so it stays in the KV cache: it is rebuilt only when
  the set of relevant files changes — a document opened, closed, switched to or saved,
  the folder changed, or the current file's imports changed (checked in idle time) — and
  the new block is then prefilled in idle time. Open tabs' unsaved text is taken at the
  rebuild.

Time is injected: ``next_deadline()`` says when the session needs ``tick(now)``.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from app.core.engine import CompletionRequest, CompletionResult, CompletionStats, PrefillResult
from app.core.ghost import Ghost
from app.core.repo import RepoLocation
from app.core.repo import locate as repo_locate
from app.core.repo_context import (
    MAX_REGIONS_PER_FILE,
    ContextBlock,
    ContextInputs,
    CountTokens,
    RepoContext,
    estimate_tokens,
)
from app.core.session.cache import CompletionCache, Place, remainder
from app.core.session.jobs import RequestKind, SessionJob
from app.core.session.requests import RequestSettings, build_request, plan_context
from app.core.settings_schema import Settings

log = logging.getLogger("starpad.session")

DEFAULT_DEBOUNCE_MS = 250
#: Idle time after which the prompt at the caret is prefilled. Longer than the pause
#: between keystrokes (~150 ms) and the debounce, so typing never starts it; short enough
#: that a user who clicks and looks for a second has the new place mostly read.
DEFAULT_IDLE_PREFILL_MS = 400
#: A growth step moves the cached window (new lines go in front of it and behind it), so
#: a keystroke that cancels one costs the next request a shift: it waits for a pause
#: longer than a glance at the ghost.
DEFAULT_WIDEN_AFTER_MS = 1500
#: Prompt time a request may spend on what the cache lacks. The promise is a first token
#: within 1 s as the user edits and within 3 s at worst (5 s in a file just opened); the
#: worst case is a far jump, where a new window around the caret is evaluated whole, and
#: first-token overheads (a shift, the sampling) come on top of this.
DEFAULT_FIRST_TOKEN_BUDGET_MS = 2500.0
MAX_DOCUMENTS = 16
#: Idle time rescans the current file for changed imports up to this size (~100 ms for 5 MB).
MAX_IMPORT_SCAN_CHARS = 2_000_000

Clock = Callable[[], float]


class CompletionPhase(enum.Enum):
    """What the user should be told about completions right now (the status bar)."""

    IDLE = "idle"
    WAITING = "waiting"  # the debounce is running
    THINKING = "thinking"  # asked, no text yet
    STREAMING = "streaming"
    ERROR = "error"
    PAUSED = "paused"  # a quant comparison owns the CPU


class RequestOutcome(enum.Enum):
    """What an explicit request (Ctrl+Space) led to."""

    SENT = "sent"
    NO_MODEL = "no model"
    PAUSED = "paused"
    NO_DOCUMENT = "no document"


@dataclass(frozen=True)
class SessionSettings:
    debounce_ms: int = DEFAULT_DEBOUNCE_MS
    auto_complete: bool = True
    #: Idle time before the prompt at the caret is prefilled; None: never.
    idle_prefill_ms: int | None = DEFAULT_IDLE_PREFILL_MS
    #: Further idle time, after a narrowed prompt is prefilled, before its window grows
    #: towards the whole context.
    widen_after_ms: int = DEFAULT_WIDEN_AFTER_MS
    #: A user request must show its first token within this time: a prompt that would take
    #: longer to evaluate (a file just opened) is narrowed around the caret, and the whole
    #: context follows in idle time. None: always the whole prompt.
    first_token_budget_ms: float | None = DEFAULT_FIRST_TOKEN_BUDGET_MS
    request: RequestSettings = RequestSettings()

    @classmethod
    def from_settings(
        cls, settings: Settings, idle_prefill_ms: int | None = DEFAULT_IDLE_PREFILL_MS
    ) -> SessionSettings:
        return cls(
            debounce_ms=settings.debounce_ms,
            auto_complete=settings.auto_complete,
            idle_prefill_ms=idle_prefill_ms,
            request=RequestSettings.from_settings(settings),
        )


@dataclass(frozen=True)
class RequestReport:
    """What the engine did for one request, for the status bar: current or stale alike."""

    request_id: int
    kind: RequestKind
    stats: CompletionStats
    current: bool
    stop_reason: str


class SessionView(Protocol):
    """Where the session's output goes (the window; a recorder in tests)."""

    def ghost_changed(self, document: str, ghost: Ghost | None) -> None: ...

    def phase_changed(self, phase: CompletionPhase, detail: str) -> None: ...

    def request_reported(self, report: RequestReport) -> None: ...

    def deadline_changed(self, deadline: float | None) -> None: ...


class JobRunner(Protocol):
    """Whoever owns the engine: runs jobs in its own time, answers through the session's
    ``on_*`` methods, tagged with the job's id."""

    def submit(self, job: SessionJob) -> None: ...

    def cancel(self, request_id: int) -> None: ...


class NullView:
    """A view that shows nothing (scripts that only want the jobs)."""

    def ghost_changed(self, document: str, ghost: Ghost | None) -> None:
        pass

    def phase_changed(self, phase: CompletionPhase, detail: str) -> None:
        pass

    def request_reported(self, report: RequestReport) -> None:
        pass

    def deadline_changed(self, deadline: float | None) -> None:
        pass


class Deadline(enum.Enum):
    DEBOUNCE = "debounce"
    PREFILL = "prefill"
    WIDEN = "widen"


class Deadlines:
    """The session's timers as plain numbers; tells its listener when the earliest moves."""

    def __init__(self, on_change: Callable[[float | None], None]) -> None:
        self._at: dict[Deadline, float] = {}
        self._on_change = on_change
        self._told: float | None = None

    def set(self, which: Deadline, at: float) -> None:
        self._at[which] = at
        self._notify()

    def clear(self, which: Deadline) -> None:
        if self._at.pop(which, None) is not None:
            self._notify()

    def pending(self, which: Deadline) -> bool:
        return which in self._at

    def take_if_due(self, which: Deadline, now: float) -> bool:
        """True (and cleared) when ``which`` is set and due at ``now``."""
        at = self._at.get(which)
        if at is None or at > now:
            return False
        self.clear(which)
        return True

    def next(self) -> float | None:
        return min(self._at.values(), default=None)

    def _notify(self) -> None:
        earliest = self.next()
        if earliest != self._told:
            self._told = earliest
            self._on_change(earliest)


@dataclass
class DocumentState:
    """One open document as the session knows it."""

    id: str
    text: str
    caret: int
    path: Path | None = None
    repo: RepoLocation | None = None
    #: Bumped on every edit or replacement: which text a prefill was for.
    version: int = 0
    #: The ghost last shown for this document (None: none).
    ghost: Ghost | None = None
    cache: CompletionCache = field(default_factory=CompletionCache)


@dataclass
class _Live:
    """The newest user request: where it was asked and what streamed so far."""

    request_id: int
    document: str
    place: Place
    text: str = ""


#: (document, version, caret, context): one prompt, as far as the session can tell.
_PromptState = tuple[str, int, int, Hashable]


@dataclass(frozen=True)
class _Prefill:
    request_id: int
    state: _PromptState
    #: Growing the window towards the whole context (a longer idle), not just the window.
    widen: bool = False


def _locate(path: Path | None) -> RepoLocation | None:
    if path is None:
        return None
    try:
        return repo_locate(path)
    except (OSError, ValueError, RuntimeError) as exc:
        log.info("no repository location for %s: %s", path, exc)
        return None


def _line_of(text: str, caret: int) -> int:
    """0-based line of ``caret`` (called on a tab switch or a rebuild, not per keystroke)."""
    return text.count("\n", 0, max(0, min(caret, len(text))))


class CompletionSession:
    """See the module docstring. Not thread-safe: one thread (the GUI's) drives it."""

    def __init__(
        self,
        runner: JobRunner,
        view: SessionView | None = None,
        settings: SessionSettings = SessionSettings(),
        clock: Clock = time.monotonic,
        recent_files: Callable[[], Sequence[str]] = lambda: (),
        max_documents: int = MAX_DOCUMENTS,
        count_tokens: CountTokens | None = None,
    ) -> None:
        self._runner = runner
        self._view: SessionView = view if view is not None else NullView()
        self.settings = settings
        self._clock = clock
        self._recent_files = recent_files
        self._max_documents = max(1, max_documents)
        self._docs: OrderedDict[str, DocumentState] = OrderedDict()
        self._current: str | None = None
        self._live: _Live | None = None
        self._prefill: _Prefill | None = None
        #: The last prompt the engine was asked to evaluate (and did not give up on).
        self._evaluated: _PromptState | None = None
        self._model_ready = False
        self._paused = False
        self._next_id = 0
        self._phase: tuple[CompletionPhase, str] = (CompletionPhase.IDLE, "")
        self._deadlines = Deadlines(lambda at: self._view.deadline_changed(at))
        # Repository context: the block of the current document, rebuilt only when stale.
        self._repo_context = RepoContext(count_tokens or estimate_tokens)
        self._workspace: Path | None = None
        self._block: ContextBlock | None = None
        self._block_doc: str | None = None
        self._block_stale = True
        #: Lines recently seen per file (0-based, most recent first), for chunks of big files.
        self._regions: dict[Path, list[int]] = {}
        #: Files edited here and closed since, most recent last.
        self._edited_closed: list[Path] = []
        #: (document, version) whose imports the last idle check read.
        self._imports_checked: tuple[str, int] | None = None
        self._context_disabled: frozenset[str] = frozenset()

    # ------------------------------------------------------------ queries
    @property
    def current(self) -> DocumentState | None:
        return self._docs.get(self._current) if self._current is not None else None

    def document(self, doc_id: str) -> DocumentState:
        return self._docs[doc_id]

    @property
    def documents(self) -> tuple[str, ...]:
        return tuple(self._docs)

    @property
    def phase(self) -> CompletionPhase:
        return self._phase[0]

    @property
    def debounce_pending(self) -> bool:
        return self._deadlines.pending(Deadline.DEBOUNCE)

    @property
    def prefill_pending(self) -> bool:
        """Idle prefill is scheduled (not yet sent)."""
        return self._deadlines.pending(Deadline.PREFILL)

    @property
    def live_request_id(self) -> int | None:
        """The newest user request still expected to answer."""
        return self._live.request_id if self._live is not None else None

    @property
    def prefill_request_id(self) -> int | None:
        return self._prefill.request_id if self._prefill is not None else None

    @property
    def model_ready(self) -> bool:
        return self._model_ready

    def next_deadline(self) -> float | None:
        """When ``tick`` must be called next (clock seconds); None: nothing is waiting."""
        return self._deadlines.next()

    def build_request(self, doc_id: str | None = None) -> CompletionRequest:
        """The request a completion at the document's caret sends now."""
        doc = self._doc(doc_id)
        return build_request(
            doc.text,
            doc.caret,
            self.settings.request,
            path=doc.path,
            repo=doc.repo,
            recent_files=self._recent_files() if self.settings.request.use_repo_context else (),
            document=doc.id,
            context=self._current_block(doc),
        )

    @property
    def context_block(self) -> ContextBlock | None:
        """The current document's repository block (None: repository context is off, or
        the document has no file). Built here if the set of relevant files changed."""
        doc = self.current
        return self._current_block(doc) if doc is not None else None

    @property
    def workspace(self) -> Path | None:
        return self._workspace

    def set_workspace(self, folder: Path | None) -> None:
        """A folder was opened (or closed): it names the repository and bounds a remote
        engine's context. The new block is prefilled in idle time."""
        if folder != self._workspace:
            self._workspace = folder
            self._context_changed()

    def files_changed(self) -> None:
        """A file was saved, or changed on disk: the context block is rebuilt (with the
        tabs' texts as they are now) and prefilled in idle time."""
        self._context_changed()

    def set_context_disabled(self, paths: Iterable[str]) -> None:
        """The user switched these context files off (paths relative to the repository
        root, as ``context_block`` lists them): they stay out of every block until switched on."""
        disabled = frozenset(paths)
        if disabled != self._context_disabled:
            self._context_disabled = disabled
            self._context_changed()

    # ---------------------------------------------------------- documents
    def open_document(self, doc_id: str, text: str, caret: int = 0, path: Path | None = None) -> DocumentState:
        """Add (or replace the text of) a document and make it current. Not an edit:
        nothing is asked but idle prefill. A known document keeps its completion cache,
        whose exact keys make stale entries unreachable."""
        doc = self._docs.get(doc_id)
        if doc is None:
            doc = DocumentState(doc_id, text, self._clamp(caret, text), path, _locate(path))
            self._docs[doc_id] = doc
        else:
            if self._live is not None and self._live.document == doc_id:
                self._cancel_live()
            doc.text, doc.caret, doc.version = text, self._clamp(caret, text), doc.version + 1
            if path != doc.path:
                doc.path, doc.repo = path, _locate(path)
        self._evict()
        self.switch_to(doc_id, force=True)
        return doc

    def switch_to(self, doc_id: str, force: bool = False) -> None:
        """Make ``doc_id`` the current document: the old one's request and ghost go, this
        one's cached ghost at its caret comes back."""
        if doc_id not in self._docs:
            raise KeyError(f"unknown document {doc_id!r}")
        if doc_id == self._current and not force:
            return
        old = self.current
        self._deadlines.clear(Deadline.DEBOUNCE)
        self._cancel_live()
        if old is not None and old.id != doc_id:
            self._show(old, None)
            self._remember_region(old)
        self._current = doc_id
        self._block_stale = True  # another current file, or its text replaced: another block
        self._docs.move_to_end(doc_id)
        doc = self._docs[doc_id]
        doc.ghost = None
        self._show(doc, self._ghost_at(doc), always=True)
        self._schedule_prefill()

    def close_document(self, doc_id: str) -> None:
        doc = self._docs.pop(doc_id, None)
        if doc is None:
            return
        if self._live is not None and self._live.document == doc_id:
            self._cancel_live()
        if self._prefill is not None and self._prefill.state[0] == doc_id:
            self._cancel_prefill()
        if self._current == doc_id:
            self._current = None
            self._deadlines.clear(Deadline.DEBOUNCE)
            self._clear_idle_deadlines()
        self._remember_region(doc)
        if doc.version > 0 and doc.path is not None:  # edited here: a recently edited file now
            self._edited_closed = [p for p in self._edited_closed if p != doc.path][-15:] + [doc.path]
        self._context_changed()

    def set_path(self, doc_id: str, path: Path | None) -> None:
        """The document was saved under another name: the prompt's path changes."""
        doc = self._docs[doc_id]
        doc.path, doc.repo = path, _locate(path)
        self._context_changed()

    # -------------------------------------------------------------- edits
    def text_edited(self, text: str, caret: int, doc_id: str | None = None) -> None:
        """The user changed the text (the window filters out its own replacements)."""
        doc = self._doc(doc_id)
        if text == doc.text:  # e.g. the rest of a loading file added at once: no change
            self.caret_moved(caret, doc.id)
            return
        doc.text, doc.caret, doc.version = text, self._clamp(caret, text), doc.version + 1
        if doc.id != self._current:
            return
        self._schedule_prefill()
        if not self._can_complete():
            self._show(doc, None)
            return
        live = self._live_rest(doc)
        if live is not None:  # typed what the ghost shows: keep the request, ask nothing new
            self._deadlines.clear(Deadline.DEBOUNCE)
            self._show(doc, Ghost(doc.caret, live))
            return
        self._cancel_live()
        hit = doc.cache.lookup(doc.text, doc.caret, self._context(doc))
        if hit is not None:
            self._deadlines.clear(Deadline.DEBOUNCE)
            self._show(doc, Ghost(doc.caret, hit.rest))
            self._set_phase(CompletionPhase.IDLE, "· from cache")
            return
        self._show(doc, None)
        if self.settings.auto_complete:
            self._deadlines.set(Deadline.DEBOUNCE, self._clock() + self.settings.debounce_ms / 1000)
            self._set_phase(CompletionPhase.WAITING)
        else:
            self._deadlines.clear(Deadline.DEBOUNCE)

    def caret_moved(self, caret: int, doc_id: str | None = None) -> None:
        """The caret moved without an edit. A pending debounce still fires (at the new
        caret); a request in flight keeps running until idle prefill needs the engine."""
        doc = self._doc(doc_id)
        caret = self._clamp(caret, doc.text)
        if caret == doc.caret:
            return
        doc.caret = caret
        if doc.id != self._current:
            return
        self._schedule_prefill()
        if self._can_complete():
            self._show(doc, self._ghost_at(doc))

    def ghost_accepted(self, text: str) -> None:
        """Tab (or a partial accept) inserted ``text``; the edit itself arrives as
        ``text_edited`` and is judged there like any typing."""
        log.debug("accepted %d characters", len(text))

    def ghost_dismissed(self) -> None:
        """Esc: drop the ghost and stop its request; typing later may bring it back."""
        self._deadlines.clear(Deadline.DEBOUNCE)
        self._cancel_live()
        doc = self.current
        if doc is not None:
            self._show(doc, None)
        self._set_phase(CompletionPhase.IDLE)

    def request_now(self) -> RequestOutcome:
        """Ctrl+Space: ask the engine at once, whatever the cache holds."""
        if self._paused:
            return RequestOutcome.PAUSED
        if not self._model_ready:
            return RequestOutcome.NO_MODEL
        doc = self.current
        if doc is None:
            return RequestOutcome.NO_DOCUMENT
        self._submit_user(doc)
        return RequestOutcome.SENT

    # ------------------------------------------------------ configuration
    def configure(self, settings: SessionSettings) -> None:
        if settings.request != self.settings.request:  # repository context on/off, budget, remote
            self._block_stale = True
        self.settings = settings
        if not settings.auto_complete:
            self._deadlines.clear(Deadline.DEBOUNCE)
        if settings.idle_prefill_ms is None:
            self._clear_idle_deadlines()

    def set_model_ready(self, ready: bool) -> None:
        """A model finished loading (True) or is being replaced (False). A new model
        answers differently: every cached completion goes. Not an edit: no completion."""
        self._model_ready = ready
        self._cancel_live()
        self._cancel_prefill()
        self._evaluated = None
        self._deadlines.clear(Deadline.DEBOUNCE)
        for state in self._docs.values():
            state.cache.clear()
        doc = self.current
        if doc is not None:
            self._show(doc, None)
        if ready:
            self._schedule_prefill()
        else:
            self._clear_idle_deadlines()

    def set_paused(self, paused: bool) -> None:
        """A quant comparison starts or ends: nothing is asked meanwhile."""
        self._paused = paused
        if paused:
            self._cancel_live()
            self._cancel_prefill()
            self._deadlines.clear(Deadline.DEBOUNCE)
            self._clear_idle_deadlines()
            doc = self.current
            if doc is not None:
                self._show(doc, None)
            self._set_phase(CompletionPhase.PAUSED)
        else:
            self._set_phase(CompletionPhase.IDLE)
            self._schedule_prefill()

    # --------------------------------------------------------------- time
    def tick(self, now: float | None = None) -> None:
        """Do whatever is due at ``now`` (default: the clock)."""
        now = self._clock() if now is None else now
        if self._deadlines.take_if_due(Deadline.DEBOUNCE, now):
            doc = self.current
            if doc is not None and self._can_complete() and self.settings.auto_complete:
                self._submit_user(doc)
        if self._deadlines.take_if_due(Deadline.PREFILL, now):
            self._maybe_prefill()
        if self._deadlines.take_if_due(Deadline.WIDEN, now):
            self._maybe_prefill(widen=True)

    # ------------------------------------------------------------ results
    def on_started(self, request_id: int) -> None:
        if self._is_live(request_id):
            self._set_phase(CompletionPhase.THINKING)

    def on_text(self, request_id: int, piece: str) -> None:
        live = self._live
        if live is None or live.request_id != request_id:
            return  # stale: a newer request exists, or the user moved on
        live.text += piece
        self._set_phase(CompletionPhase.STREAMING)
        doc = self._docs.get(live.document)
        if doc is not None and doc.id == self._current:
            self._show(doc, self._ghost_at(doc))

    def on_finished(self, request_id: int, result: CompletionResult) -> None:
        live = self._live
        current = live is not None and live.request_id == request_id
        self._view.request_reported(RequestReport(request_id, RequestKind.USER, result.stats, current,
                                                  result.stop_reason))
        if live is None or not current:
            return
        self._live = None
        doc = self._docs.get(live.document)
        if doc is None:
            return
        if result.stop_reason != "cancelled":
            doc.cache.store(live.place, result.text)  # authoritative: may be shorter than what streamed
        if result.narrowed:
            # The first token came in time from a window around the caret; the whole
            # context joins now, in idle time, so the next request reuses it.
            self._evaluated = None
            self._schedule_prefill()
        self._set_phase(CompletionPhase.IDLE, f"· {result.stop_reason.replace('_', ' ')}")
        if doc.id == self._current:
            self._show(doc, self._ghost_at(doc))

    def on_prefilled(self, request_id: int, result: PrefillResult) -> None:
        prefill = self._prefill
        current = prefill is not None and prefill.request_id == request_id
        self._view.request_reported(RequestReport(request_id, RequestKind.PREFILL, result.stats, current,
                                                  "cancelled" if result.cancelled else "prefilled"))
        if prefill is None or not current:
            return
        self._prefill = None
        if not result.cancelled:
            self._evaluated = prefill.state
            if result.narrowed and not prefill.widen:
                self._deadlines.set(Deadline.WIDEN, self._clock() + self.settings.widen_after_ms / 1000)

    def on_failed(self, request_id: int, message: str) -> None:
        if self._prefill is not None and self._prefill.request_id == request_id:
            log.info("prefill %d failed: %s", request_id, message)
            self._prefill = None
            return
        if self._is_live(request_id):
            self._live = None
            self._set_phase(CompletionPhase.ERROR, message)

    # ----------------------------------------------------------- internal
    def _doc(self, doc_id: str | None) -> DocumentState:
        key = doc_id if doc_id is not None else self._current
        if key is None:
            raise KeyError("no current document")
        return self._docs[key]

    @staticmethod
    def _clamp(caret: int, text: str) -> int:
        return max(0, min(caret, len(text)))

    def _context(self, doc: DocumentState) -> Hashable:
        """What besides the text shapes the prompt: part of every cache key."""
        block = self._current_block(doc)
        return (self.settings.request, str(doc.path) if doc.path is not None else None,
                block.key if block is not None else None)

    def _state(self, doc: DocumentState) -> _PromptState:
        return (doc.id, doc.version, doc.caret, self._context(doc))

    def _can_complete(self) -> bool:
        return self._model_ready and not self._paused

    def _is_live(self, request_id: int) -> bool:
        return self._live is not None and self._live.request_id == request_id

    def _live_rest(self, doc: DocumentState) -> str | None:
        live = self._live
        if live is None or live.document != doc.id:
            return None
        return remainder(live.text, live.place.typed_since(doc.text, doc.caret, self._context(doc)))

    def _ghost_at(self, doc: DocumentState) -> Ghost | None:
        """What to show at the caret: the streaming request's text, else the cache's."""
        if not self._can_complete():
            return None
        rest = self._live_rest(doc)
        if rest is None:
            hit = doc.cache.lookup(doc.text, doc.caret, self._context(doc))
            rest = hit.rest if hit is not None else None
        return Ghost(doc.caret, rest) if rest else None

    def _show(self, doc: DocumentState, ghost: Ghost | None, always: bool = False) -> None:
        if ghost != doc.ghost or always:
            doc.ghost = ghost
            self._view.ghost_changed(doc.id, ghost)

    def _set_phase(self, phase: CompletionPhase, detail: str = "") -> None:
        if (phase, detail) != self._phase:
            self._phase = (phase, detail)
            self._view.phase_changed(phase, detail)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _submit_user(self, doc: DocumentState) -> None:
        self._deadlines.clear(Deadline.DEBOUNCE)
        self._deadlines.clear(Deadline.WIDEN)
        self._cancel_live()
        self._cancel_prefill()  # a user request supersedes idle work at once
        self._show(doc, None)
        request = dataclasses.replace(self.build_request(doc.id), latency_budget_ms=self.settings.first_token_budget_ms)
        request_id = self._new_id()
        self._live = _Live(request_id, doc.id, Place.at(doc.text, doc.caret, self._context(doc)))
        self._evaluated = self._state(doc)
        self._runner.submit(SessionJob(request_id, RequestKind.USER, request))
        self._set_phase(CompletionPhase.THINKING)

    def _cancel_live(self) -> None:
        if self._live is not None:
            self._runner.cancel(self._live.request_id)
            self._live = None
            if self._phase[0] in (CompletionPhase.THINKING, CompletionPhase.STREAMING):
                self._set_phase(CompletionPhase.IDLE)

    def _cancel_prefill(self) -> None:
        if self._prefill is not None:
            self._runner.cancel(self._prefill.request_id)
            self._prefill = None

    def _clear_idle_deadlines(self) -> None:
        self._deadlines.clear(Deadline.PREFILL)
        self._deadlines.clear(Deadline.WIDEN)

    def _schedule_prefill(self) -> None:
        self._deadlines.clear(Deadline.WIDEN)  # the user acted: the pause starts again
        delay = self.settings.idle_prefill_ms
        if delay is not None and self._model_ready and not self._paused:
            self._deadlines.set(Deadline.PREFILL, self._clock() + delay / 1000)

    def _maybe_prefill(self, widen: bool = False) -> None:
        """The user is idle: evaluate the prompt at the caret unless that is done or under
        way. ``widen``: a longer idle after the window at the caret was prefilled — grow it
        towards the whole context."""
        doc = self.current
        if doc is None or not self._can_complete() or self._deadlines.pending(Deadline.DEBOUNCE):
            return
        self._check_imports(doc)
        state = self._state(doc)
        if widen:
            if state != self._evaluated or self._prefill is not None or self._live is not None:
                return  # something happened since the window was prefilled
        elif state == self._evaluated or (self._prefill is not None and self._prefill.state == state):
            return
        if self._live is not None:
            if (self._live.document == doc.id
                    and self._live.place.typed_since(doc.text, doc.caret, self._context(doc)) is not None):
                return  # the request in flight is evaluating this place already
            self._cancel_live()  # the user left its place and stayed away
        self._cancel_prefill()
        # With the budget the engine prefills the window the next request will use first,
        # then grows it towards the whole context (``Engine.prefill``).
        request = dataclasses.replace(self.build_request(doc.id), latency_budget_ms=self.settings.first_token_budget_ms,
                                      prefill_widens=widen)
        ghost = doc.ghost if doc.ghost is not None and doc.ghost.position == doc.caret else None
        if ghost is not None:
            # As if the ghost shown were accepted: its tokens are in the cache right after
            # the prompt, and Tab is the likeliest next move. A prefill of the bare caret
            # would drop them, and accepting would then cost the whole ghost again; typing
            # something else instead only cuts them off the end.
            request = dataclasses.replace(request, prefix=request.prefix + ghost.text)
        request_id = self._new_id()
        self._prefill = _Prefill(request_id, state, widen)
        self._runner.submit(SessionJob(request_id, RequestKind.PREFILL, request))

    # ------------------------------------------------- repository context
    def _context_changed(self) -> None:
        """The set of relevant files changed: rebuild the block when next needed and
        prefill it in idle time."""
        self._block_stale = True
        if self.current is not None:
            self._schedule_prefill()

    def _current_block(self, doc: DocumentState) -> ContextBlock | None:
        """The repository block for ``doc`` when it is the current document (only the
        current document has one: others get theirs when they become current)."""
        if not self.settings.request.use_repo_context or doc.path is None or doc.id != self._current:
            return None
        if self._block_stale or self._block_doc != doc.id:
            self._block, self._block_doc, self._block_stale = self._plan_block(doc), doc.id, False
        return self._block

    def _plan_block(self, doc: DocumentState) -> ContextBlock:
        assert doc.path is not None
        # Open tabs, most recently used first (they are picked in this order when not all fit).
        open_texts = {d.path: d.text for d in reversed(self._docs.values()) if d.path is not None}
        regions: dict[Path, list[int]] = {path: list(lines) for path, lines in self._regions.items()}
        for other in self._docs.values():
            if other.path is not None and other.id != doc.id:
                line = _line_of(other.text, other.caret)
                regions[other.path] = [line, *(x for x in regions.get(other.path, ()) if x != line)]
        recent = [*reversed(self._edited_closed), *(Path(p) for p in self._recent_files())]
        inputs = ContextInputs(doc.path, self._workspace, open_texts, recent, regions, current_text=doc.text,
                               disabled=self._context_disabled)
        try:
            block = plan_context(inputs, self.settings.request, provider=self._repo_context)
        except (OSError, ValueError, RuntimeError) as exc:
            # An empty block, not None: None would make every request plan one again.
            log.warning("no repository context for %s: %s", doc.path, exc)
            root = doc.repo.root if doc.repo is not None else doc.path.parent
            return ContextBlock(root, root.name or str(root),
                                doc.repo.relative_path if doc.repo is not None else doc.path.name, ())
        log.debug("repository block for %s: %d parts", block.current_path, len(block.entries))
        return block

    def _check_imports(self, doc: DocumentState) -> None:
        """Idle time: a changed import list makes the block stale (never checked per keystroke)."""
        block = self._block if self._block_doc == doc.id and not self._block_stale else None
        if block is None or doc.path is None or not self.settings.request.use_repo_context:
            return
        if (doc.id, doc.version) == self._imports_checked or len(doc.text) > MAX_IMPORT_SCAN_CHARS:
            return  # nothing typed since the last look; a huge file is rescanned on rebuilds only
        self._imports_checked = (doc.id, doc.version)
        try:
            imports = self._repo_context.imports_of(ContextInputs(doc.path, self._workspace, current_text=doc.text))
        except (OSError, ValueError, RuntimeError) as exc:
            log.info("cannot read the imports of %s: %s", doc.path, exc)
            return
        if imports != block.imports:
            log.debug("imports of %s changed: new repository block", doc.path)
            self._block_stale = True

    def _remember_region(self, doc: DocumentState) -> None:
        """Where the user was in ``doc``: a chunk of it around there is context later."""
        if doc.path is None:
            return
        line = _line_of(doc.text, doc.caret)
        lines = [line, *(x for x in self._regions.get(doc.path, ()) if x != line)]
        self._regions[doc.path] = lines[:MAX_REGIONS_PER_FILE]
        while len(self._regions) > 4 * MAX_DOCUMENTS:
            del self._regions[next(iter(self._regions))]

    def _evict(self) -> None:
        while len(self._docs) > self._max_documents:
            oldest = next(iter(self._docs))
            if oldest == self._current:
                self._docs.move_to_end(oldest)
                continue
            self.close_document(oldest)
