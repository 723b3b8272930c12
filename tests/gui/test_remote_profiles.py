"""Server profiles in the model dialog, the worker switching to a server, the status bar
saying so plainly — and nothing sent anywhere until a profile is chosen."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.engine import CompletionRequest, CompletionResult
from app.core.memory_fit import MemoryInfo
from app.core.remote.base import RemoteDescription
from app.core.remote.keys import KeyStore
from app.core.remote.profile import ServerKind, ServerProfile, profiles_from_json
from app.core.session import RequestKind, SessionJob
from app.gui.model_dialog import ModelDialog, ServersPanel
from app.gui.statusbar import StatusPanel
from app.gui.worker import EngineClient
from tests.remote_servers import LlamaServer, MemoryKeyring, require_llama_server

pytestmark = pytest.mark.usefixtures("qapp")


class Asked:
    """The confirmation dialog, answered by the test."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.questions: list[str] = []

    def __call__(self, _title: str, text: str) -> bool:
        self.questions.append(text)
        return self.answer


def fill(panel: ServersPanel, name: str, url: str, key: str = "", kind: ServerKind = ServerKind.LLAMA_SERVER) -> None:
    panel.new_profile()
    panel.name_edit.setText(name)
    panel.url_edit.setText(url)
    panel.kind_box.setCurrentIndex(panel.kind_box.findData(kind.value))
    panel.key_edit.setText(key)


def test_a_saved_profile_keeps_its_key_in_the_keyring_not_the_settings(qtbot) -> None:
    backend = MemoryKeyring()
    panel = ServersPanel([], KeyStore(backend), confirm=Asked(True))
    qtbot.addWidget(panel)
    fill(panel, "gpu box", "https://gpu.example.com:8443", key="sk-very-secret", kind=ServerKind.OPENAI)
    panel.model_edit.setText("bigcode/starcoder2-15b")
    with qtbot.waitSignal(panel.profiles_changed) as saved:
        panel.save_profile()
    text = saved.args[0]
    assert "sk-very-secret" not in text
    assert json.loads(text)[0]["url"] == "https://gpu.example.com:8443"
    assert profiles_from_json(text)[0].model == "bigcode/starcoder2-15b"
    assert backend.stored == {("Starpad", "gpu box"): "sk-very-secret"}
    assert panel.list.count() == 1 and panel.list.item(0).text() == "gpu box — gpu.example.com:8443"
    with qtbot.waitSignal(panel.profiles_changed) as deleted:
        panel.delete_profile()
    assert deleted.args[0] == "[]"
    assert backend.stored == {}


def test_without_a_keyring_the_panel_says_the_key_lives_for_this_session(qtbot) -> None:
    panel = ServersPanel([], KeyStore(None, detect=False))
    qtbot.addWidget(panel)
    assert "kept for this session only" in panel.note_label.text()
    fill(panel, "headless", "http://127.0.0.1:8080", key="sk-session")
    panel.save_profile()
    assert "kept for this session only" in panel.message_label.text()
    assert KeyStore(None, detect=False).get("headless") == "sk-session"


def test_a_bad_profile_gets_a_clear_message_and_is_not_saved(qtbot) -> None:
    panel = ServersPanel([], KeyStore(MemoryKeyring()))
    qtbot.addWidget(panel)
    fill(panel, "typo", "gpu-box:8080")
    assert panel.save_profile() is None
    assert "must start with http:// or https://" in panel.message_label.text()
    assert panel.profiles == []


def test_plain_http_to_another_machine_needs_an_explicit_yes(qtbot) -> None:
    no = Asked(False)
    panel = ServersPanel([], KeyStore(MemoryKeyring()), confirm=no)
    qtbot.addWidget(panel)
    emitted: list[ServerProfile] = []
    panel.connect_requested.connect(emitted.append)
    fill(panel, "lan", "http://192.168.1.20:8080", key="sk-lan")
    assert panel.connect_profile() is False
    assert emitted == []
    assert "unencrypted" in no.questions[0] and "API key" in no.questions[0]
    panel.confirm = Asked(True)
    assert panel.connect_profile() is True
    assert [p.url for p in emitted] == ["http://192.168.1.20:8080"]
    assert emitted[0].api_key == "sk-lan"


def test_loopback_and_https_connect_without_asking(qtbot) -> None:
    asked = Asked(False)
    panel = ServersPanel([], KeyStore(MemoryKeyring()), confirm=asked)
    qtbot.addWidget(panel)
    emitted: list[ServerProfile] = []
    panel.connect_requested.connect(emitted.append)
    for url in ("http://127.0.0.1:8080", "https://gpu.example.com"):
        fill(panel, url, url)
        assert panel.connect_profile() is True
    assert asked.questions == []
    assert [p.url for p in emitted] == ["http://127.0.0.1:8080", "https://gpu.example.com"]


def test_the_status_bar_says_plainly_where_the_code_goes(qtbot) -> None:
    status = StatusPanel()
    qtbot.addWidget(status)
    status.set_remote(RemoteDescription(ServerKind.LLAMA_SERVER, "gpu.example.com:8080", "starcoder2-15b", 16384,
                                        False))
    assert status.remote_label.text() == "Remote: gpu.example.com:8080 · starcoder2-15b"
    assert not status.remote_label.isHidden()
    assert "sent to the server gpu.example.com:8080" in status.remote_label.toolTip()
    status.set_remote(None)
    assert status.remote_label.text() == "" and status.remote_label.isHidden()


def test_profiles_in_the_dialog_send_nothing_until_one_is_chosen(qtbot, monkeypatch) -> None:
    attempts: list[object] = []

    def refuse(*args: object, **_kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", lambda self, address: refuse(address))
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    profiles = [ServerProfile("gpu", "https://gpu.example.com"), ServerProfile("local", "http://127.0.0.1:8080")]
    dialog = ModelDialog(None, memory=MemoryInfo(16 * 2**30, 12 * 2**30, ()), profiles=profiles,
                         keys=KeyStore(MemoryKeyring()))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.tabs.setCurrentWidget(dialog.servers)
    dialog.servers.list.setCurrentRow(1)
    assert dialog.servers.url_edit.text() == "http://127.0.0.1:8080"
    dialog.reject()
    assert attempts == []


@pytest.fixture()
def server(tiny_model: Path, tmp_path: Path) -> Iterator[LlamaServer]:
    with LlamaServer(require_llama_server(), tiny_model, tmp_path) as running:
        yield running


def test_the_worker_completes_on_the_server_chosen_in_the_dialog(qtbot, server: LlamaServer,
                                                                 tiny_model: Path) -> None:
    client = EngineClient()
    try:
        dialog = ModelDialog(None, memory=MemoryInfo(16 * 2**30, 12 * 2**30, ()), keys=KeyStore(MemoryKeyring()),
                             profiles=[ServerProfile("here", server.url)])
        qtbot.addWidget(dialog)
        dialog.server_requested.connect(client.connect_server)
        with qtbot.waitSignal(client.worker.server_connected, timeout=20_000) as connected:
            dialog.servers.connect_profile()
        description = connected.args[0]
        assert isinstance(description, RemoteDescription)
        assert description.label == f"Remote: 127.0.0.1:{server.port} · {tiny_model.name}"
        request = CompletionRequest("def add(a, b):\n    return ", "\n", max_tokens=4, document="a.py")
        with qtbot.waitSignal(client.worker.completion_finished, timeout=20_000) as finished:
            client.submit(SessionJob(1, RequestKind.USER, request))
        result: CompletionResult = finished.args[1]
        token_texts: dict[int, str] = finished.args[2]
        assert result.stop_reason != "cancelled"
        assert result.stats.prompt_tokens == len(result.prompt.tokens)
        assert token_texts[result.prompt.tokens[0]] == "<fim_prefix>"
    finally:
        assert client.shutdown()


def test_a_server_that_cannot_be_used_reports_and_keeps_the_current_engine(qtbot) -> None:
    client = EngineClient()
    try:
        with qtbot.waitSignal(client.worker.model_failed, timeout=20_000) as failed:
            client.connect_server(ServerProfile("down", "http://127.0.0.1:9", timeout_s=2))
        assert failed.args[0].startswith("cannot reach the server at 127.0.0.1:9")
        assert not client.worker._current().is_loaded  # still the (unloaded) local engine
    finally:
        assert client.shutdown()


def test_the_window_says_remote_while_a_server_is_used_and_stops_after_a_local_load(
    qtbot, server: LlamaServer, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QMessageBox

    from app.gui.main_window import MainWindow
    from app.gui.settings import Settings

    warnings: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text, *a: warnings.append(text))
    win = MainWindow(Settings(n_ctx=4096, max_tokens=4, threads=2), interactive=False)
    try:
        with qtbot.waitSignal(win.client.worker.server_connected, timeout=20_000):
            win.models.connect_server(ServerProfile("here", server.url))
        assert win.status.remote_label.text() == f"Remote: 127.0.0.1:{server.port} · {tiny_model.name}"
        assert not win.status.remote_label.isHidden()
        assert win.models.remote is not None and win.models.model_info is None
        with qtbot.waitSignal(win.client.worker.model_loaded, timeout=20_000):
            win.models.load_model(str(tiny_model))
        assert win.status.remote_label.isHidden()
        assert win.models.remote is None
        assert warnings == []
    finally:
        win.close()
        win.deleteLater()


def test_a_server_that_dies_gives_a_clear_status_message_and_the_text_stays(
    qtbot, server: LlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QMessageBox

    from app.gui.main_window import MainWindow
    from app.gui.settings import Settings

    monkeypatch.setattr(QMessageBox, "warning", lambda *_a: None)
    text = "def add(a, b):\n    return "
    win = MainWindow(Settings(n_ctx=4096, max_tokens=4, threads=2, auto_complete=False), interactive=False)
    try:
        with qtbot.waitSignal(win.client.worker.server_connected, timeout=20_000):
            win.models.connect_server(ServerProfile("here", server.url, timeout_s=2))
        win.editor.setPlainText(text)
        cursor = win.editor.textCursor()
        cursor.setPosition(len(text))
        win.editor.setTextCursor(cursor)
        server.kill()
        with qtbot.waitSignal(win.client.worker.completion_failed, timeout=20_000) as failed:
            win.request_completion()
        assert failed.args[1].startswith(f"cannot reach the server at 127.0.0.1:{server.port}")
        qtbot.waitUntil(lambda: "Completion failed: cannot reach the server" in win.status.currentMessage())
        assert win.editor.toPlainText() == text
    finally:
        win.editor.document().setModified(False)
        win.close()
        win.deleteLater()
