"""The comparison window driven for real on quantized generated models."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt

from app.core.compare import CompareSettings
from app.gui.compare_window import CompareWindow
from app.gui.main_window import MainWindow
from app.gui.settings import Settings

PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\nprint(add(1, 2))\n"
SMALL = CompareSettings(max_tokens=8, n_ctx=1024, threads=2)


def make_window(quantized_models: dict[str, Path]) -> CompareWindow:
    window = CompareWindow(PREFIX, SUFFIX)
    for name in ("Q4_0", "F16", "Q8_0"):
        window.add_model(quantized_models[name])
    return window


def test_run_shows_columns_outputs_chart_and_exports(qtbot, quantized_models, tmp_path: Path) -> None:
    window = make_window(quantized_models)
    window.show()
    with qtbot.waitSignal(window.worker.finished, timeout=60_000):
        window.run(SMALL)
    qtbot.waitUntil(lambda: window.report is not None and not window.running, timeout=5_000)
    headers = [window.table.horizontalHeaderItem(c).text() for c in range(window.table.columnCount())]
    assert headers == ["Q4_0", "F16 (ref)", "Q8_0"]
    assert window.table.item(6, 1).text() == "100.0%"  # the reference agrees with itself
    assert window.outputs_layout.count() == 3
    assert len(window.plot.listDataItems()) == 1 and "Done" in window.status.text()
    window.export_to(tmp_path / "c.json")
    window.export_to(tmp_path / "c.md")
    assert len(json.loads((tmp_path / "c.json").read_text())["results"]) == 3
    assert "| Quant |" in (tmp_path / "c.md").read_text()
    window.close()


def test_cancel_mid_run_leaves_the_window_usable(qtbot, quantized_models) -> None:
    window = make_window(quantized_models)
    window.show()
    seen = []
    window.worker.stage.connect(lambda *a: seen.append(a))
    with qtbot.waitSignal(window.worker.cancelled, timeout=60_000):
        window.run(CompareSettings(max_tokens=400, n_ctx=2048, threads=2))
        qtbot.waitUntil(lambda: len(seen) >= 2, timeout=30_000)
        window.cancel()
    qtbot.waitUntil(lambda: window.run_button.isEnabled(), timeout=5_000)
    assert "Cancelled" in window.status.text() and window.report is None
    with qtbot.waitSignal(window.worker.finished, timeout=60_000):
        window.run(SMALL)
    window.close()


def test_too_few_models_is_explained(qtbot, quantized_models) -> None:
    window = CompareWindow(PREFIX, SUFFIX)
    window.add_model(quantized_models["F16"])
    window.run(SMALL)
    assert "Pick 2 to 4" in window.status.text() and not window.running
    window.close()


def test_the_gpu_layers_setting_goes_with_every_run(qtbot) -> None:
    """Both tabs load each quant with the app's GPU-layers choice (-1: auto, per quant)."""
    main = MainWindow(Settings(n_ctx=1024, threads=2, n_gpu_layers=-1))
    main.models.open_comparison()
    window = main.models.compare_window
    assert window is not None and window.n_gpu_layers == -1
    assert window.default_settings().n_gpu_layers == -1
    assert window.quality.settings_from_controls().n_gpu_layers == -1
    window.close()
    main.editor.document().setModified(False)
    main.close()


def test_editor_completions_pause_while_comparing(qtbot, tiny_model: Path) -> None:
    main = MainWindow(Settings(n_ctx=1024, threads=2))
    with qtbot.waitSignal(main.client.worker.model_loaded, timeout=20_000):
        main.load_model(str(tiny_model))
    main.models.set_comparison_running(True)
    before = main.client.latest_request_id
    main.request_completion()
    assert main.client.latest_request_id == before
    main.models.set_comparison_running(False)
    main.request_completion()
    assert main.client.latest_request_id == before + 1
    main.editor.document().setModified(False)
    main.close()


def test_quality_tab_scores_each_quant_and_exports_with_the_comparison(qtbot, quantized_models, tmp_path: Path) -> None:
    from app.core.evaluation.dataset import Selection, Subset
    from app.core.evaluation.runner import EvalSettings

    window = make_window(quantized_models)
    window.show()
    window.tabs.setCurrentWidget(window.quality)
    running: list[bool] = []
    window.running_changed.connect(running.append)
    settings = EvalSettings(subset=Subset.SINGLE_LINE, selection=Selection(sample=3, seed=1), max_tokens=8,
                            n_ctx=1024, threads=2)
    with qtbot.waitSignal(window.quality.worker.finished, timeout=120_000):
        window.quality.run(settings)
        assert window.running and not window.run_button.isEnabled()  # one model in memory at a time
    qtbot.waitUntil(lambda: not window.running, timeout=5_000)
    assert running == [True, False]  # the editor's completions paused, then resumed
    report = window.quality.report
    assert report is not None and [s.n for s in report.scores] == [3, 3, 3]
    assert window.quality.table.rowCount() == 3
    assert [window.quality.table.item(r, 0).text() for r in range(3)] == ["Q4_0", "F16", "Q8_0"]
    assert window.quality.table.item(0, 2).text().endswith("%")  # the interval
    assert "Done: single-line" in window.quality.status.text()
    assert len(window.quality.size_plot.listDataItems()) == 1 and len(window.quality.speed_plot.listDataItems()) == 1
    failing = sum(len(report.failures(s.model)) for s in report.scores)
    assert window.quality.failures.count() == failing
    assert failing > 0  # random weights: nearly everything fails, and is shown beside the canonical solution
    window.quality.failures.setCurrentRow(0)
    record, problem = window.quality.failures.item(0).data(Qt.ItemDataRole.UserRole)
    assert window.quality.canonical_view.toPlainText() == problem.canonical_solution
    assert window.quality.completion_view.toPlainText() == record.completion
    assert window.export_json.isEnabled()
    window.export_to(tmp_path / "q.json")
    window.export_to(tmp_path / "q.md")
    data = json.loads((tmp_path / "q.json").read_text())
    assert [m["n"] for m in data["quality"]["models"]] == [3, 3, 3]
    assert "## Quality (HumanEval-Infilling)" in (tmp_path / "q.md").read_text()
    window.close()


def test_quality_tab_needs_a_model(qtbot) -> None:
    window = CompareWindow(PREFIX, SUFFIX)
    for row in range(window.model_list.count()):
        window.model_list.item(row).setCheckState(Qt.CheckState.Unchecked)
    window.quality.run()
    assert "Pick 1 to 4" in window.quality.status.text() and not window.running
    window.close()
