"""Offline by default: editing and completing never opens a network connection."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.gui.main_window import MainWindow
from app.gui.settings import Settings


def test_editing_and_completing_attempts_no_connection(qtbot, tiny_model: Path, monkeypatch) -> None:
    attempts: list[object] = []

    def refuse(*args: object, **_kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", lambda self, address: refuse(address))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: refuse(address))
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)

    win = MainWindow(Settings(n_ctx=2048, debounce_ms=30, max_tokens=8, threads=2))
    win.show()
    with qtbot.waitSignal(win.client.worker.model_loaded, timeout=20_000):
        win.load_model(str(tiny_model))
    win.stack.setCurrentWidget(win.editor)
    win.editor.setFocus()
    for text in ("def f(x):", "    return x"):
        with qtbot.waitSignal(win.client.worker.completion_finished, timeout=15_000):
            qtbot.keyClicks(win.editor, text)
        qtbot.waitUntil(lambda: win.editor.ghost is not None or win.status.state_label.text().startswith("● idle"))
        if win.editor.ghost is not None:
            qtbot.keyClick(win.editor, Qt.Key.Key_Tab)
    win.editor.document().setModified(False)
    win.close()
    assert attempts == []
    with pytest.raises(OSError):  # the block itself works: a real attempt would have been seen
        socket.create_connection(("127.0.0.1", 9))
