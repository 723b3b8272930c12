"""Start the window: QApplication, settings, logging, and the first model."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from app import APP_NAME, __version__
from app.gui.settings import APPLICATION, ORGANIZATION, load_settings

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow

RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def configure_interpreter() -> None:
    """Let the GUI thread get the GIL back quickly.

    The engine worker and the lexer helper are Python threads too. Qt calls into Python
    for every override (painting, highlighting), and each call may wait for the GIL for a
    whole switch interval: at the default 5 ms a busy helper thread stretched one repaint
    to 150 ms here; at 1 ms it stays a few milliseconds.
    """
    sys.setswitchinterval(0.001)


def load_start_model(window: MainWindow, requested: Path | None, last_model: str) -> str | None:
    """Load ``--model`` (or else the last model); a ``--model`` that is not a file is said
    on stderr and in the status bar, not ignored. Returns that message, if any."""
    if requested is not None and not requested.is_file():
        problem = "is a folder, not a model file" if requested.is_dir() else "does not exist"
        message = f"--model {requested} {problem}: no model loaded"
        print(f"starpad: {message}", file=sys.stderr)
        window.statusBar().showMessage(message, 60_000)
        return message
    model = requested or (Path(last_model) if last_model else None)
    if model is not None and model.is_file():
        window.load_model(str(model))
    return None


def run_gui(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="starpad", description=f"{APP_NAME}: local code completion")
    parser.add_argument("file", nargs="?", type=Path, help="a source file to open")
    parser.add_argument("--model", type=Path, help="a GGUF model to load at start")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    # Events and numbers only: no log line ever contains the user's code.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(name)s: %(message)s")

    configure_interpreter()
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationVersion(__version__)
    icon = RESOURCES / "starpad.svg"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))

    from app.gui.main_window import MainWindow
    from app.gui.recovery_dialog import offer_recovery

    settings = load_settings()
    window = MainWindow(settings)
    if settings.restore_session:
        window.restore_session()  # the last session's folder and tabs; the file argument comes in front
    if args.file is not None:
        window.open_file(args.file)
    window.show()
    # Every start path offers what a crashed or killed instance left, the file argument's first.
    offer_recovery(window, preferred=args.file)
    load_start_model(window, args.model, settings.last_model)
    return app.exec()
