"""Take README screenshots of the real window (run under Xvfb: see README).

    xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python packaging/screenshots.py MODEL.gguf OUT_DIR [COMPARE.gguf]

The window shows a small demo project (three Python files that import each other, written
to a temporary folder) open in the folder tree, two of its files in tabs, and a ghost
completion in ``shapes.py`` whose prompt carries ``units.py`` as repository context.
Settings, session and recovery data go to a temporary folder too: taking screenshots
never changes the user's own Starpad.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

UNITS = '''"""Unit conversions shared by the shapes."""

CM_PER_INCH = 2.54


def inches_to_cm(value: float) -> float:
    """Convert inches to centimetres."""
    return value * CM_PER_INCH


def cm_to_inches(value: float) -> float:
    """Convert centimetres to inches."""
    return value / CM_PER_INCH
'''

REPORT = '''from shapes import Circle
from units import cm_to_inches


def describe(circle: Circle) -> str:
    return f"r={circle.radius} cm ({cm_to_inches(circle.radius):.2f} in), area={circle.area():.2f}"
'''

DEMO = '''import math
from dataclasses import dataclass

from units import inches_to_cm


@dataclass
class Circle:
    radius: float

    @classmethod
    def from_inches(cls, radius: float) -> "Circle":
        return cls(inches_to_cm(radius))

    def area(self) -> float:
        """Return the area of the circle."""
        return math.pi * self.radius ** 2

    def circumference(self) -> float:
        """Return the circumference of the circle."""
        '''

DEMO_SUFFIX = '''


def main() -> None:
    circle = Circle(2.0)
    print(circle.area(), circle.circumference())
'''


def write_demo_project(folder: Path) -> Path:
    """A small git project ``geometry``: shapes.py imports units.py, report.py imports both."""
    root = folder / "geometry"
    (root / ".git").mkdir(parents=True)
    for name, text in ((".gitignore", "__pycache__/\n*.log\n"), ("units.py", UNITS),
                       ("shapes.py", DEMO + DEMO_SUFFIX), ("report.py", REPORT)):
        (root / name).write_text(text, encoding="utf-8")
    return root


def main() -> int:
    model, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    # The comparison wants readable text: a real-weights model (SmolLM2) may stand in there,
    # while the window shows a StarCoder2 model, whose FIM and repository tokens it needs.
    compare_model = Path(sys.argv[3]) if len(sys.argv) > 3 else model
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="starpad-screenshots-"))
    # Before Qt reads them: QSettings and the data folder (session, recovery) live in scratch.
    os.environ["XDG_CONFIG_HOME"] = str(scratch / "config")
    os.environ["XDG_DATA_HOME"] = str(scratch / "data")
    app = QApplication(sys.argv[:1])
    from app.gui.main_window import MainWindow
    from app.gui.settings import Settings

    project = write_demo_project(scratch)
    demo_file = project / "shapes.py"
    window = MainWindow(Settings(n_ctx=4096, max_tokens=40, debounce_ms=100, show_inspector=False,
                                 use_repo_context=True))
    window.resize(1280, 760)
    window.show()
    window.set_folder(project)
    window.open_file(project / "units.py")
    window.open_file(demo_file)
    window.resizeDocks([window.panels.folder_dock], [210], Qt.Orientation.Horizontal)
    shots = [("window-light.png", False, False), ("window-dark.png", True, True)]

    def load() -> None:
        window.load_model(str(model))

    def complete() -> None:
        cursor = window.editor.textCursor()
        cursor.setPosition(len(DEMO))
        window.editor.setTextCursor(cursor)
        window.editor.setFocus()
        window.request_completion()

    def shoot(name: str) -> None:
        app.processEvents()
        window.grab().save(str(out_dir / name))
        print("wrote", out_dir / name)

    def shoot_model_dialog() -> None:
        from app.core.memory_fit import detect_memory
        from app.gui.model_dialog import ModelDialog

        dialog = ModelDialog(window, memory=detect_memory(), n_ctx=16384)
        dialog.show()
        dialog.context_box.setCurrentIndex(dialog.context_box.findData(16384))
        app.processEvents()
        dialog.grab().save(str(out_dir / "model-dialog.png"))
        print("wrote", out_dir / "model-dialog.png")
        dialog.done(0)

    def shoot_comparison() -> None:
        from bench.synthetic_model import quantize
        from app.core.compare import CompareSettings
        from app.gui.compare_window import CompareWindow

        scratch_models = scratch / "models"
        scratch_models.mkdir(exist_ok=True)
        quants = [compare_model] + [
            quantize(compare_model, scratch_models / f"{compare_model.stem}-requant-{q}.gguf", q, allow_requantize=True)
            for q in ("Q4_0", "Q2_K")
        ]
        window.set_dark_theme(False)
        compare = CompareWindow(DEMO, DEMO_SUFFIX)
        compare.resize(1300, 760)
        for path in quants:
            compare.add_model(Path(path))
        compare.show()
        compare.run(CompareSettings(max_tokens=24, n_ctx=2048))

        def wait() -> None:
            if compare.report is None:
                QTimer.singleShot(300, wait)
                return
            app.processEvents()
            compare.grab().save(str(out_dir / "compare.png"))
            print("wrote", out_dir / "compare.png")
            compare.close()
            window.editor.document().setModified(False)
            window.close()
            app.quit()

        QTimer.singleShot(500, wait)

    def run(index: int = 0) -> None:
        if index == len(shots):
            shoot_model_dialog()
            shoot_comparison()
            return
        name, dark, inspector = shots[index]
        window.set_dark_theme(dark)
        window.inspector_dock.setVisible(inspector)
        complete()

        def shoot_and_go_on() -> None:
            shoot(name)
            run(index + 1)

        def wait() -> None:
            if window.editor.ghost is not None and window.status.state_label.text().startswith("● idle"):
                if inspector and window._last_result:
                    result, token_texts = window._last_result
                    window.inspector.show_prompt(result.prompt, result.stats, token_texts)
                QTimer.singleShot(400, shoot_and_go_on)
            else:
                QTimer.singleShot(200, wait)

        QTimer.singleShot(300, wait)

    def wait_for_model() -> None:
        # Polling on the GUI thread: a lambda connected to a worker signal would run in the worker.
        if window.model_info is not None:
            QTimer.singleShot(500, run)
        else:
            QTimer.singleShot(100, wait_for_model)

    QTimer.singleShot(200, load)
    QTimer.singleShot(300, wait_for_model)
    QTimer.singleShot(120_000, app.quit)
    try:
        return app.exec()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
