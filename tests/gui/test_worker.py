"""The engine thread runs what the session asks: newest user request first, prefill only
when idle, and a user request stops a running prefill part-way through a batch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.engine import CompletionRequest, EngineConfig, PrefillResult
from app.core.model_info import ModelInfo
from app.core.offload import OffloadPlan
from app.core.session import RequestKind, SessionJob
from app.gui.worker import EngineClient

pytestmark = pytest.mark.usefixtures("qapp")
LONG_TEXT = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(1500))  # ~16K tokens


@pytest.fixture()
def client(qtbot, tiny_model: Path) -> Iterator[EngineClient]:
    client = EngineClient()
    with qtbot.waitSignal(client.worker.model_loaded, timeout=20_000):
        # Big batches: one batch of the long prompt takes a good part of a second here, so
        # stopping fast needs llama.cpp's abort callback, not a check between batches.
        client.load_model(str(tiny_model), EngineConfig(n_ctx=16384, n_threads=2, n_batch=2048))
    yield client
    assert client.shutdown()


def test_a_user_request_stops_a_running_prefill_within_0_3_s(qtbot, client: EngineClient) -> None:
    prefilled: list[tuple[int, PrefillResult, float]] = []
    client.worker.prefill_finished.connect(lambda rid, res: prefilled.append((rid, res, time.perf_counter())))
    engine = client.worker._get_engine()
    with qtbot.waitSignal(client.worker.prefill_started, timeout=5_000):
        client.submit(SessionJob(1, RequestKind.PREFILL, CompletionRequest(prefix=LONG_TEXT, max_tokens=4)))
    # Well into the prompt, where each batch is slowest (attention over what came before).
    qtbot.waitUntil(lambda: len(engine.kv_tokens) >= 6144, timeout=30_000)
    asked = time.perf_counter()
    with qtbot.waitSignal(client.worker.completion_finished, timeout=30_000,
                          check_params_cb=lambda rid, *_: rid == 2) as finished:
        client.submit(SessionJob(2, RequestKind.USER, CompletionRequest(prefix="def g(y):\n    ", max_tokens=4)))
    qtbot.waitUntil(lambda: bool(prefilled), timeout=5_000)
    (request_id, result, stopped_at) = prefilled[0]
    assert request_id == 1 and result.cancelled
    assert result.stats.evaluated < result.stats.prompt_tokens
    assert stopped_at - asked < 0.3, f"the prefill took {stopped_at - asked:.3f} s to stop"
    assert finished.args[1].stop_reason != "cancelled"


def test_prefill_waits_for_the_user_request_and_the_newest_request_wins(qtbot, client: EngineClient) -> None:
    order: list[tuple[str, int]] = []
    client.worker.completion_started.connect(lambda rid: order.append(("user", rid)))
    client.worker.prefill_started.connect(lambda rid: order.append(("prefill", rid)))
    client.worker.prefill_finished.connect(lambda rid, _res: order.append(("prefilled", rid)))
    request = CompletionRequest(prefix="def g(y):\n    ", max_tokens=2)
    # Queued in one go; the worker may pick the first one before the others arrive.
    client.submit(SessionJob(10, RequestKind.PREFILL, request))
    client.submit(SessionJob(11, RequestKind.USER, request))
    client.submit(SessionJob(12, RequestKind.USER, request))  # cancels 10 and 11 wherever they are
    client.submit(SessionJob(13, RequestKind.PREFILL, request))  # queued behind the user request
    qtbot.waitUntil(lambda: ("prefilled", 13) in order, timeout=15_000)
    started = [entry for entry in order if entry[0] in ("user", "prefill")]
    assert started[-2:] == [("user", 12), ("prefill", 13)]
    assert client.latest_request_id == 12


def test_the_gpu_layers_setting_is_planned_on_the_engine_thread(qtbot, tiny_model: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning reads the file's header, the whole vocabulary included: never on the GUI thread."""
    import threading

    import app.gui.worker as worker_module

    threads: list[threading.Thread] = []
    real = worker_module.model_info

    def spy(path: str) -> ModelInfo:
        threads.append(threading.current_thread())
        return real(path)

    monkeypatch.setattr(worker_module, "model_info", spy)
    client = EngineClient()
    try:
        planned: list[OffloadPlan | None] = []
        client.worker.offload_planned.connect(planned.append)
        with qtbot.waitSignal(client.worker.model_loaded, timeout=20_000):
            client.load_model(str(tiny_model), EngineConfig(n_ctx=2048, n_threads=2), gpu_layers=-1)
        assert threads and threading.main_thread() not in threads
        (plan,) = planned
        assert plan is not None and plan.n_gpu_layers == 0  # no GPU here: CPU
    finally:
        assert client.shutdown()
