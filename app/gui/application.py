"""Start the window: QApplication, settings, logging, and the first model."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from app import APP_NAME, __version__
from app.gui.settings import APPLICATION, ORGANIZATION, load_settings

RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def configure_interpreter() -> None:
    """Let the GUI thread get the GIL back quickly.

    The engine worker and the lexer helper are Python threads too. Qt calls into Python
    for every override (painting, highlighting), and each call may wait for the GIL for a
    whole switch interval: at the default 5 ms a busy helper thread stretched one repaint
    to 150 ms here; at 1 ms it stays a few milliseconds.
    """
    sys.setswitchinterval(0.001)


def run_gui(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="starpad", description=f"{APP_NAME}: local code completion")
    parser.add_argument("file", nargs="?", type=Path, help="a source file to open")
    parser.add_argument("--model", type=Path, help="a GGUF model to load at start")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    # Events and numbers only: no log line ever contains the user's code.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(name)s: %(message)s")

    configure_interpreter()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationVersion(__version__)
    icon = RESOURCES / "starpad.svg"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))

    from app.gui.main_window import MainWindow

    settings = load_settings()
    window = MainWindow(settings)
    if args.file is not None:
        window.open_file(args.file)
    else:
        window.restore_recovery()
    model = args.model or (Path(settings.last_model) if settings.last_model else None)
    if model is not None and model.is_file():
        window.load_model(str(model))
    window.show()
    return app.exec()
