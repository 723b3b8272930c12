"""What starts a completion and what it sends: the model dialog's context, the repository
name, and no completion for merely opening a file (pytest-qt, real worker and model)."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from app.core.engine import EngineConfig
from app.gui.main_window import MainWindow
from app.gui.settings import Settings

pytestmark = pytest.mark.usefixtures("qapp")


@pytest.fixture()
def window(qtbot, monkeypatch: pytest.MonkeyPatch) -> Iterator[MainWindow]:
    monkeypatch.setattr(QMessageBox, "warning", lambda *_a, **_k: QMessageBox.StandardButton.Ok)
    win = MainWindow(Settings(n_ctx=4096, debounce_ms=30, max_tokens=4, threads=2))
    win.show()
    yield win
    win.editor.document().setModified(False)
    win.close()
    win.deleteLater()
    del win
    gc.collect()


def test_the_model_dialogs_context_size_reaches_the_load(qtbot, window: MainWindow, tiny_model: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from app.gui.model_dialog import ModelDialog

    # The dialog's user picks 2K context and loads: exec() stands in for that click.
    monkeypatch.setattr(ModelDialog, "exec", lambda dialog: dialog.load_requested.emit(str(tiny_model), 2048))
    with qtbot.waitSignal(window.client.worker.model_loaded, timeout=20_000):
        window.open_model_manager()
    assert window.settings.n_ctx == 2048
    window.editor.setPlainText("def f(x):\n    return ")
    with qtbot.waitSignal(window.client.worker.completion_finished, timeout=15_000) as blocker:
        window.request_completion()
    assert blocker.args[1].stats.ctx_size == 2048


def test_opening_a_file_starts_no_completion(qtbot, window: MainWindow, tiny_model: Path, tmp_path: Path) -> None:
    with qtbot.waitSignal(window.client.worker.model_loaded, timeout=20_000):
        window.load_model(str(tiny_model))
    started: list[int] = []
    window.client.worker.completion_started.connect(started.append)
    source = tmp_path / "module.py"
    source.write_text("".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(2000)), encoding="utf-8")
    assert window.open_file(source)
    qtbot.waitUntil(lambda: not window.editor.loading, timeout=20_000)
    qtbot.wait(window.settings.debounce_ms * 5)  # well past the debounce: nothing may have fired
    assert not window.completion.session.debounce_pending
    assert started == [] and window.client.latest_request_id == 0
    assert window.editor.ghost is None and window.editor.toPlainText() == source.read_text(encoding="utf-8")
    # The user's first keystroke does ask.
    with qtbot.waitSignal(window.client.worker.completion_finished, timeout=15_000):
        window.editor.insertPlainText("#")
    assert window.client.latest_request_id > 0


def test_repo_name_comes_from_the_files_git_root_not_the_working_folder(
    window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "my-project"
    (repo / ".git").mkdir(parents=True)
    (repo / "pkg").mkdir()
    source = repo / "pkg" / "core.py"
    source.write_text("x = 1\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # a double-clicked app runs in some unrelated folder
    window.settings.use_repo_context = True
    assert window.open_file(source)
    request = window.build_request()
    assert request.repo_name == "my-project"
    assert request.path == "pkg/core.py"


def test_the_cache_reuse_preference_reaches_the_engine(qtbot, window: MainWindow, tiny_model: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from app.core.reuse_plan import ReuseMode

    sent: list[EngineConfig] = []
    load = window.client.load_model
    def spy(path: str, config: EngineConfig, gpu_layers: int | None = None) -> None:
        sent.append(config)
        load(path, config, gpu_layers)

    monkeypatch.setattr(window.client, "load_model", spy)
    with qtbot.waitSignal(window.client.worker.model_loaded, timeout=20_000):
        window.load_model(str(tiny_model))
    assert sent[-1].reuse is ReuseMode.FAST  # the default the edit-session benchmark justifies
    changed = dataclasses.replace(window.settings, cache_reuse="exact")
    with qtbot.waitSignal(window.client.worker.model_loaded, timeout=20_000):
        window.update_settings(changed)  # a different reuse mode reloads the model with it
    assert sent[-1].reuse is ReuseMode.EXACT
