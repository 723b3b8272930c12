"""The first-start page (no model yet) and the stack that swaps it for the tabs."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from app import APP_NAME


class EmptyState(QWidget):
    """First start, no model: say what to do, and offer it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        title = QLabel(f"<h2>Welcome to {APP_NAME}</h2>")
        body = QLabel(
            "Starpad completes code with a StarCoder2 model running entirely on this computer.<br>"
            "Nothing you type leaves your machine.<br><br>"
            "Choose a StarCoder2 model that fits this computer, or open a <b>.gguf</b> you have.<br>"
            "You can keep typing meanwhile."
        )
        for label in (title, body):
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            layout.addWidget(label)
        self.models_button = QPushButton("Choose a model for this computer…")
        self.models_button.setMinimumWidth(260)
        self.open_button = QPushButton("Open a GGUF file…")
        self.open_button.setMinimumWidth(260)
        self.continue_button = QPushButton("Just edit for now")
        for button in (self.models_button, self.open_button, self.continue_button):
            layout.addWidget(button, alignment=Qt.AlignmentFlag.AlignCenter)
        layout.addStretch(2)


class CentralStack(QStackedWidget):
    """The empty state or the tabs. Asked to show an editor, it shows the tabs with that
    editor's tab in front (scripts and tests say "show the editor", not "show the tabs")."""

    def __init__(self, empty_state: EmptyState, workspace: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.empty_state = empty_state
        self.workspace = workspace
        self.addWidget(empty_state)
        self.addWidget(workspace)

    def setCurrentWidget(self, widget: QWidget) -> None:  # noqa: N802 - Qt name
        if widget is not self.empty_state and self.indexOf(widget) < 0 and self.workspace.isAncestorOf(widget):
            super().setCurrentWidget(self.workspace)
            return
        super().setCurrentWidget(widget)

    def show_workspace(self) -> None:
        super().setCurrentWidget(self.workspace)
