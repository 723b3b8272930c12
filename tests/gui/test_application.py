"""Starting the window: what the command line asked for is done, or said."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.gui.application import load_start_model
from app.gui.main_window import MainWindow
from app.gui.settings import Settings
from tests.gui.test_main_window import dispose


@pytest.fixture()
def window(qtbot) -> Iterator[MainWindow]:
    win = MainWindow(Settings(n_ctx=2048, threads=2), interactive=False)
    yield win
    dispose(win)


def test_a_missing_model_is_said_not_ignored(window: MainWindow, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nonexistent.gguf"
    message = load_start_model(window, missing, last_model="")
    assert message is not None and str(missing) in message and "does not exist" in message
    assert capsys.readouterr().err == f"starpad: {message}\n"
    assert window.statusBar().currentMessage() == message
    assert window.model_info is None


def test_a_folder_given_as_model_is_said(window: MainWindow, tmp_path: Path) -> None:
    message = load_start_model(window, tmp_path, last_model="")
    assert message is not None and "is a folder" in message


def test_the_requested_model_loads(qtbot, window: MainWindow, tiny_model: Path) -> None:
    with qtbot.waitSignal(window.client.worker.model_loaded, timeout=20_000):
        assert load_start_model(window, tiny_model, last_model="/gone/last.gguf") is None
    assert window.model_info is not None and window.model_info.path.name == tiny_model.name


def test_without_a_request_a_vanished_last_model_is_silently_skipped(window: MainWindow) -> None:
    assert load_start_model(window, None, last_model="/gone/last.gguf") is None
    assert window.model_info is None
