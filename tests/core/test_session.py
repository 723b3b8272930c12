"""The completion session without Qt: a fake clock, a fake runner, and the real engine."""

from __future__ import annotations

import dataclasses

from dataclasses import replace
from pathlib import Path

import pytest

from app.core.engine import CompletionResult, CompletionStats, Engine, PrefillResult, SamplingParams
from app.core.fim import FimPrompt, Layout
from app.core.ghost import Ghost
from app.core.session import (
    MAX_TYPED_AHEAD,
    CompletionPhase,
    CompletionSession,
    EngineRunner,
    JobQueue,
    RequestKind,
    RequestOutcome,
    RequestReport,
    RequestSettings,
    SessionJob,
    SessionSettings,
)

TEXT = "def f(x):\n    \n    return x\n"
CARET = len("def f(x):\n    ")
DEBOUNCE = 0.25
PROMPT = FimPrompt(Layout.SPM, ())
IDLE = 1.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeRunner:
    """Records what the session asks; nothing runs until a test answers."""

    def __init__(self) -> None:
        self.jobs: list[SessionJob] = []
        self.cancelled: list[int] = []

    def submit(self, job: SessionJob) -> None:
        self.jobs.append(job)

    def cancel(self, request_id: int) -> None:
        self.cancelled.append(request_id)

    def of(self, kind: RequestKind) -> list[SessionJob]:
        return [job for job in self.jobs if job.kind is kind]


class RecordingView:
    def __init__(self) -> None:
        self.ghosts: dict[str, Ghost | None] = {}
        self.phases: list[tuple[CompletionPhase, str]] = []
        self.reports: list[RequestReport] = []
        self.deadlines: list[float | None] = []

    def ghost_changed(self, document: str, ghost: Ghost | None) -> None:
        self.ghosts[document] = ghost

    def phase_changed(self, phase: CompletionPhase, detail: str) -> None:
        self.phases.append((phase, detail))

    def request_reported(self, report: RequestReport) -> None:
        self.reports.append(report)

    def deadline_changed(self, deadline: float | None) -> None:
        self.deadlines.append(deadline)


def stats() -> CompletionStats:
    return CompletionStats(10, 0, 3, 1.0, 1.0, 10.0, 10.0, 13, 4096, evaluated=10)


def result(text: str, stop: str = "max_tokens") -> CompletionResult:
    return CompletionResult(text, PROMPT, stop, stats())


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture()
def view() -> RecordingView:
    return RecordingView()


@pytest.fixture()
def session(clock: FakeClock, runner: FakeRunner, view: RecordingView) -> CompletionSession:
    s = CompletionSession(runner, view, SessionSettings(debounce_ms=250, idle_prefill_ms=1000), clock=clock)
    s.open_document("a", TEXT, CARET)
    s.set_model_ready(True)
    return s


def advance(session: CompletionSession, clock: FakeClock, seconds: float) -> None:
    clock.now += seconds
    session.tick(clock.now)


def type_at_caret(session: CompletionSession, typed: str) -> None:
    doc = session.current
    assert doc is not None
    session.text_edited(doc.text[: doc.caret] + typed + doc.text[doc.caret :], doc.caret + len(typed))


def ask_and_answer(session: CompletionSession, runner: FakeRunner, text: str) -> SessionJob:
    assert session.request_now() is RequestOutcome.SENT
    job = runner.jobs[-1]
    session.on_started(job.request_id)
    session.on_text(job.request_id, text)
    session.on_finished(job.request_id, result(text))
    return job


# ------------------------------------------------------------------ debounce and ids
def test_an_edit_asks_after_the_debounce_with_the_text_at_the_caret(session, runner, clock, view) -> None:
    type_at_caret(session, "y")
    assert session.debounce_pending and runner.of(RequestKind.USER) == []
    assert session.next_deadline() == pytest.approx(clock.now + DEBOUNCE)
    assert view.deadlines[-1] == pytest.approx(clock.now + DEBOUNCE)
    advance(session, clock, DEBOUNCE - 0.01)
    assert runner.of(RequestKind.USER) == []
    advance(session, clock, 0.01)
    (job,) = runner.of(RequestKind.USER)
    assert job.request.prefix == TEXT[:CARET] + "y" and job.request.suffix == TEXT[CARET:]
    assert job.request.document == "a"
    assert session.phase is CompletionPhase.THINKING


def test_every_keystroke_restarts_the_debounce(session, runner, clock) -> None:
    for char in "abc":
        type_at_caret(session, char)
        advance(session, clock, DEBOUNCE / 2)
    assert runner.of(RequestKind.USER) == []
    advance(session, clock, DEBOUNCE)
    assert [job.request.prefix[-3:] for job in runner.of(RequestKind.USER)] == ["abc"]


def test_the_newest_request_wins_and_stale_results_are_dropped(session, runner, view) -> None:
    session.request_now()
    first = runner.jobs[-1]
    session.request_now()
    second = runner.jobs[-1]
    assert first.request_id in runner.cancelled and second.request_id not in runner.cancelled
    session.on_text(second.request_id, "good")
    session.on_text(first.request_id, "STALE")
    session.on_finished(first.request_id, result("STALE"))
    assert view.ghosts["a"] == Ghost(CARET, "good")
    session.on_finished(second.request_id, result("good"))
    assert view.ghosts["a"] == Ghost(CARET, "good")
    assert [(r.request_id, r.current) for r in view.reports] == [(first.request_id, False), (second.request_id, True)]
    assert view.phases[-1] == (CompletionPhase.IDLE, "· max tokens")


def test_the_ghost_grows_as_text_streams(session, runner, view) -> None:
    session.request_now()
    job = runner.jobs[-1]
    for piece in ("ret", "urn", " x"):
        session.on_text(job.request_id, piece)
    assert view.ghosts["a"] == Ghost(CARET, "return x")
    assert session.phase is CompletionPhase.STREAMING


def test_typing_what_the_ghost_shows_consumes_it_without_a_request(session, runner, view) -> None:
    session.request_now()
    job = runner.jobs[-1]
    session.on_text(job.request_id, "retu")
    type_at_caret(session, "re")
    assert view.ghosts["a"] == Ghost(CARET + 2, "tu")
    session.on_text(job.request_id, "rn x")  # still streaming: the rest follows the typing
    assert view.ghosts["a"] == Ghost(CARET + 2, "turn x")
    assert not session.debounce_pending and len(runner.jobs) == 1 and runner.cancelled == []


def test_typing_something_else_drops_the_ghost_and_asks_again(session, runner, view, clock) -> None:
    job = ask_and_answer(session, runner, "return x")
    type_at_caret(session, "q")
    assert view.ghosts["a"] is None and session.debounce_pending
    advance(session, clock, DEBOUNCE)
    assert runner.of(RequestKind.USER)[-1].request_id > job.request_id


def test_a_failure_is_reported_once_and_only_for_the_newest(session, runner, view) -> None:
    session.request_now()
    old = runner.jobs[-1]
    session.request_now()
    new = runner.jobs[-1]
    session.on_failed(old.request_id, "boom")
    assert session.phase is not CompletionPhase.ERROR
    session.on_failed(new.request_id, "boom")
    assert view.phases[-1] == (CompletionPhase.ERROR, "boom")


def test_without_a_model_or_while_comparing_nothing_is_asked(session, runner, clock, view) -> None:
    session.set_paused(True)
    type_at_caret(session, "y")
    advance(session, clock, IDLE * 3)
    assert session.request_now() is RequestOutcome.PAUSED and runner.jobs == []
    assert view.phases[-1][0] is CompletionPhase.PAUSED
    session.set_paused(False)
    session.set_model_ready(False)
    type_at_caret(session, "y")
    advance(session, clock, IDLE * 3)
    assert session.request_now() is RequestOutcome.NO_MODEL and runner.jobs == []


def test_auto_complete_off_asks_only_when_told(session, runner, clock) -> None:
    session.configure(replace(session.settings, auto_complete=False, idle_prefill_ms=None))
    type_at_caret(session, "y")
    advance(session, clock, IDLE * 3)
    assert runner.jobs == []
    assert session.request_now() is RequestOutcome.SENT and len(runner.of(RequestKind.USER)) == 1


# ------------------------------------------------------------------- documents
def test_opening_a_document_is_not_an_edit(session, runner, clock) -> None:
    session.configure(replace(session.settings, idle_prefill_ms=None))
    session.open_document("b", "import os\n" * 50, 5)
    session.open_document("a", TEXT + "# reloaded\n", CARET)  # a reload: replaced, not edited
    advance(session, clock, IDLE * 5)
    assert runner.jobs == [] and not session.debounce_pending


def test_a_new_model_is_not_an_edit_and_forgets_cached_completions(session, runner, clock, view) -> None:
    ask_and_answer(session, runner, "return x")
    session.set_model_ready(False)
    session.set_model_ready(True)
    assert view.ghosts["a"] is None and not session.debounce_pending
    session.caret_moved(0)
    session.caret_moved(CARET)
    assert view.ghosts["a"] is None  # the old model's answer is not served


def test_two_documents_keep_separate_state(session, runner, view) -> None:
    ask_and_answer(session, runner, "return x")
    assert view.ghosts["a"] == Ghost(CARET, "return x")
    session.open_document("b", "class B:\n    ", len("class B:\n    "))
    assert view.ghosts["a"] is None  # a document not shown has no ghost on screen
    type_at_caret(session, "pass")
    assert session.current is not None and session.current.id == "b"
    assert session.document("a").text == TEXT and session.document("a").caret == CARET
    job_b = ask_and_answer(session, runner, "\n")
    assert job_b.request.document == "b" and job_b.request.prefix.endswith("pass")
    session.switch_to("a")
    assert view.ghosts["a"] == Ghost(CARET, "return x")  # its cache, no engine
    assert runner.jobs[-1] is job_b
    assert session.document("b").text == "class B:\n    pass"


def test_a_request_in_flight_goes_when_the_document_changes(session, runner) -> None:
    session.request_now()
    job = runner.jobs[-1]
    session.open_document("b", "x = 1\n", 0)
    assert job.request_id in runner.cancelled and session.live_request_id is None


# ---------------------------------------------------------------- completion cache
def test_typed_ahead_characters_are_served_from_the_cache(session, runner, view, clock) -> None:
    ask_and_answer(session, runner, "return x")
    before = list(runner.jobs)
    session.ghost_dismissed()  # Esc: the request is over; its answer is still known
    assert view.ghosts["a"] is None
    type_at_caret(session, "ret")
    assert view.ghosts["a"] == Ghost(CARET + 3, "urn x")
    advance(session, clock, DEBOUNCE * 2)  # well past the debounce, not yet idle
    assert runner.jobs == before and not session.debounce_pending


def test_a_wrong_character_deleted_brings_the_ghost_back_from_the_cache(session, runner, view) -> None:
    ask_and_answer(session, runner, "return x")
    users = len(runner.of(RequestKind.USER))
    type_at_caret(session, "z")
    assert view.ghosts["a"] is None and session.debounce_pending
    session.text_edited(TEXT, CARET)  # backspace
    assert view.ghosts["a"] == Ghost(CARET, "return x") and not session.debounce_pending
    assert len(runner.of(RequestKind.USER)) == users


def test_a_caret_bounce_brings_the_ghost_back(session, runner, view) -> None:
    ask_and_answer(session, runner, "return x")
    session.caret_moved(2)
    assert view.ghosts["a"] is None
    session.caret_moved(CARET)
    assert view.ghosts["a"] == Ghost(CARET, "return x")
    assert len(runner.of(RequestKind.USER)) == 1


def test_the_cache_needs_the_same_text_around_the_place(session, runner, view) -> None:
    ask_and_answer(session, runner, "return x")
    edited = TEXT + "print(f(1))\n"  # text after the caret changed
    session.text_edited(edited, CARET)
    assert view.ghosts["a"] is None and session.debounce_pending
    session.text_edited("#\n" + TEXT, CARET + 2)  # text before it changed
    assert view.ghosts["a"] is None and session.debounce_pending


def test_the_cache_looks_back_a_bounded_number_of_typed_characters(session, runner, view) -> None:
    long = "y" * (MAX_TYPED_AHEAD + 10)
    ask_and_answer(session, runner, long)
    type_at_caret(session, "y" * MAX_TYPED_AHEAD)
    assert view.ghosts["a"] == Ghost(CARET + MAX_TYPED_AHEAD, "y" * 10)
    type_at_caret(session, "y")
    assert view.ghosts["a"] is None


def test_other_settings_are_another_place(session, runner, view) -> None:
    ask_and_answer(session, runner, "return x")
    session.configure(replace(session.settings, request=RequestSettings(max_tokens=3)))
    session.caret_moved(0)
    session.caret_moved(CARET)
    assert view.ghosts["a"] is None


# ------------------------------------------------------------------ idle prefill
def test_idle_prefill_follows_the_caret_and_a_user_request_supersedes_it(session, runner, clock) -> None:
    advance(session, clock, IDLE)
    (prefill,) = runner.of(RequestKind.PREFILL)
    assert prefill.request.prefix == TEXT[:CARET] and prefill.request.document == "a"
    advance(session, clock, IDLE)
    assert len(runner.of(RequestKind.PREFILL)) == 1  # nothing new to evaluate: asked once
    session.on_prefilled(prefill.request_id, PrefillResult(PROMPT, stats(), cancelled=False))
    session.caret_moved(3)
    advance(session, clock, IDLE / 2)
    assert len(runner.of(RequestKind.PREFILL)) == 1  # not idle long enough yet
    advance(session, clock, IDLE / 2)
    moved = runner.of(RequestKind.PREFILL)[-1]
    assert moved.request.prefix == TEXT[:3]
    assert session.request_now() is RequestOutcome.SENT
    assert moved.request_id in runner.cancelled  # at once, not after the prefill
    assert session.prefill_request_id is None


def test_typing_does_not_prefill_before_the_debounced_request(session, runner, clock) -> None:
    type_at_caret(session, "r")
    advance(session, clock, DEBOUNCE)
    advance(session, clock, IDLE)
    assert [job.kind for job in runner.jobs] == [RequestKind.USER]  # the request evaluated this prompt


def test_a_request_for_a_place_the_user_left_gives_way_to_prefill(session, runner, clock) -> None:
    session.request_now()
    job = runner.jobs[-1]
    session.caret_moved(2)
    advance(session, clock, IDLE)
    assert job.request_id in runner.cancelled
    assert runner.jobs[-1].kind is RequestKind.PREFILL and runner.jobs[-1].request.prefix == TEXT[:2]


# ------------------------------------------------------------------- job queue
def test_the_queue_runs_the_newest_user_request_first_and_prefill_only_when_idle() -> None:
    from app.core.engine import CompletionRequest

    queue = JobQueue()
    prefill = queue.push(SessionJob(1, RequestKind.PREFILL, CompletionRequest("a")))
    old = queue.push(SessionJob(2, RequestKind.USER, CompletionRequest("b")))
    new = queue.push(SessionJob(3, RequestKind.USER, CompletionRequest("c")))
    assert old.cancel.cancelled and prefill.cancel.cancelled
    assert queue.pop() is new
    later = queue.push(SessionJob(4, RequestKind.PREFILL, CompletionRequest("d")))
    assert not new.cancel.cancelled  # a prefill never stops a user request
    queue.done(new)
    assert queue.pop() is later
    queue.push(SessionJob(5, RequestKind.USER, CompletionRequest("e")))
    assert later.cancel.cancelled  # the running prefill is stopped for the user


# --------------------------------------------------------------- the real engine
def biased(engine: Engine, char: str) -> RequestSettings:
    """Random weights may end a completion at once; this forces ``char`` repeated."""
    token = engine.tokenize(char)[0]
    return RequestSettings(max_tokens=6, sampling=SamplingParams(logit_bias=((token, 1000.0),)))


def real_session(engine: Engine, clock: FakeClock, view: RecordingView, text: str, caret: int,
                 request: RequestSettings) -> tuple[CompletionSession, EngineRunner]:
    runner = EngineRunner(engine)
    session = CompletionSession(runner, view, SessionSettings(request=request), clock=clock)
    runner.attach(session)
    session.open_document("doc", text, caret, Path("pkg/module.py"))
    session.set_model_ready(True)
    return session, runner


def test_with_the_real_engine_typed_ahead_text_needs_no_engine(engine: Engine, clock, view) -> None:
    session, runner = real_session(engine, clock, view, TEXT, CARET, biased(engine, "q"))
    type_at_caret(session, "q")
    advance(session, clock, DEBOUNCE)
    ran = runner.run_all()
    assert [job.kind for job in ran] == [RequestKind.USER]
    ghost = view.ghosts["doc"]
    assert ghost is not None and ghost.position == CARET + 1 and set(ghost.text) == {"q"}
    kv_before = engine.kv_tokens
    for _ in range(2):
        type_at_caret(session, "q")
        advance(session, clock, DEBOUNCE + 0.1)  # past the debounce, before idle prefill
    assert view.ghosts["doc"] == Ghost(CARET + 3, ghost.text[2:])
    assert runner.run_all() == [] and len(runner.submitted) == 1  # the engine was not asked at all
    assert engine.kv_tokens == kv_before


def test_with_the_real_engine_prefill_readies_the_cache_for_the_request(engine: Engine, clock, view) -> None:
    text = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(40))
    caret = text.index("return x + 20")
    session, runner = real_session(engine, clock, view, text, caret, biased(engine, "q"))
    advance(session, clock, IDLE)
    (prefill,) = runner.run_all()
    assert prefill.kind is RequestKind.PREFILL
    (report,) = view.reports
    assert report.kind is RequestKind.PREFILL and report.current and report.stats.evaluated > 100
    assert session.request_now() is RequestOutcome.SENT
    runner.run_all()
    user = view.reports[-1]
    assert user.kind is RequestKind.USER and user.current
    assert user.stats.evaluated <= 2  # everything but the last prompt token(s) came from the prefill
    assert view.ghosts["doc"] is not None


def test_with_the_real_engine_a_user_request_cancels_a_queued_prefill(engine: Engine, clock, view) -> None:
    session, runner = real_session(engine, clock, view, TEXT, CARET, biased(engine, "q"))
    advance(session, clock, IDLE)
    assert session.request_now() is RequestOutcome.SENT
    ran = runner.run_all()
    assert [job.kind for job in ran] == [RequestKind.USER]
    assert view.ghosts["doc"] is not None


def test_user_requests_carry_the_first_token_budget_and_a_narrowed_one_is_followed_by_prefill(
    session, runner, clock
) -> None:
    assert session.request_now() is RequestOutcome.SENT
    (job,) = runner.of(RequestKind.USER)
    assert job.request.latency_budget_ms == session.settings.first_token_budget_ms == 2500.0
    session.on_started(job.request_id)
    session.on_finished(job.request_id, dataclasses.replace(result("x"), narrowed=True))
    advance(session, clock, IDLE)
    (prefill,) = runner.of(RequestKind.PREFILL)  # the whole context joins in idle time, window first
    assert prefill.request.latency_budget_ms == 2500.0
    assert not prefill.request.prefill_widens
    # As if the ghost shown were accepted: its tokens stay in the cache for Tab.
    assert prefill.request.prefix == TEXT[:CARET] + "x"
    assert prefill.request.suffix == TEXT[CARET:]


def test_a_prefilled_window_grows_only_after_a_longer_pause_and_any_action_postpones_it(
    session, runner, clock
) -> None:
    advance(session, clock, IDLE)
    (window,) = runner.of(RequestKind.PREFILL)
    session.on_prefilled(window.request_id, PrefillResult(PROMPT, stats(), cancelled=False, narrowed=True))
    widen_s = session.settings.widen_after_ms / 1000
    advance(session, clock, widen_s / 2)
    session.caret_moved(CARET - 1)  # the user moved: the window at the new caret comes first
    advance(session, clock, widen_s / 2 + 0.01)
    assert [job.request.prefill_widens for job in runner.of(RequestKind.PREFILL)] == [False]
    advance(session, clock, IDLE)
    first, second = runner.of(RequestKind.PREFILL)
    assert not second.request.prefill_widens and second.request.prefix == TEXT[: CARET - 1]
    session.on_prefilled(second.request_id, PrefillResult(PROMPT, stats(), cancelled=False, narrowed=True))
    advance(session, clock, widen_s + 0.01)
    *_, grow = runner.of(RequestKind.PREFILL)
    assert grow.request.prefill_widens and grow.request.prefix == TEXT[: CARET - 1]
    # A prefill that covered the whole prompt needs no growth.
    session.on_prefilled(grow.request_id, PrefillResult(PROMPT, stats(), cancelled=False, narrowed=False))
    advance(session, clock, widen_s * 4)
    assert len(runner.of(RequestKind.PREFILL)) == 3


def test_a_whole_prompt_answered_in_time_needs_no_prefill_at_the_same_place(session, runner, clock) -> None:
    ask_and_answer(session, runner, "x")
    advance(session, clock, IDLE * 2)
    assert runner.of(RequestKind.PREFILL) == []
