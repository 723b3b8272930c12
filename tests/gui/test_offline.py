"""Offline by default: editing and completing never opens a network connection."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.core.engine import CompletionRequest, Engine, SamplingParams
from app.gui.main_window import MainWindow
from app.gui.settings import Settings


def test_editing_and_completing_attempts_no_connection(qtbot, tiny_model: Path, engine: Engine, monkeypatch) -> None:
    attempts: list[object] = []

    def refuse(*args: object, **_kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", lambda self, address: refuse(address))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: refuse(address))
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)

    win = MainWindow(Settings(n_ctx=2048, debounce_ms=30, max_tokens=8, threads=2))
    session = win.completion.session
    build_request = session.build_request

    x = engine.tokenize("x")[0]

    def request_that_writes_x(doc_id: str | None = None) -> CompletionRequest:
        # Random weights may well end a completion at once; forcing "x" makes a ghost appear every time.
        return dataclasses.replace(build_request(doc_id), sampling=SamplingParams(logit_bias=((x, 1000.0),)))

    monkeypatch.setattr(session, "build_request", request_that_writes_x)
    win.show()
    with qtbot.waitSignal(win.client.worker.model_loaded, timeout=20_000):
        win.load_model(str(tiny_model))
    win.stack.setCurrentWidget(win.editor)
    win.editor.setFocus()
    for text in ("def f(x):", "    return x"):
        with qtbot.waitSignal(win.client.worker.completion_finished, timeout=15_000):
            qtbot.keyClicks(win.editor, text)
        qtbot.waitUntil(lambda: win.editor.ghost is not None)
        ghost = win.editor.ghost
        assert ghost is not None and set(ghost.text) == {"x"}
        qtbot.keyClick(win.editor, Qt.Key.Key_Tab)
        assert win.editor.toPlainText()[ghost.position : ghost.position + len(ghost.text)] == ghost.text
    win.editor.document().setModified(False)
    win.close()
    assert attempts == []
    with pytest.raises(OSError):  # the block itself works: a real attempt would have been seen
        socket.create_connection(("127.0.0.1", 9))
