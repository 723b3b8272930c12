"""Light and dark themes: Qt palette colours plus the matching Pygments style."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication


@dataclass(frozen=True)
class Theme:
    name: str
    pygments_style: str
    background: str
    foreground: str
    current_line: str
    gutter_bg: str
    gutter_fg: str
    ghost: str
    bracket: str


LIGHT = Theme("light", "default", "#ffffff", "#1f2328", "#f3f6fa", "#f6f8fa", "#8c959f", "#9aa0a6", "#c8e1ff")
DARK = Theme("dark", "monokai", "#1e1f22", "#d4d4d4", "#2a2d32", "#1a1b1e", "#6b7078", "#6f737a", "#3b4b63")


def apply_palette(app: QApplication, theme: Theme) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    if theme is DARK:
        for role, colour in (
            (QPalette.ColorRole.Window, "#25262a"), (QPalette.ColorRole.WindowText, "#e6e6e6"),
            (QPalette.ColorRole.Base, theme.background), (QPalette.ColorRole.AlternateBase, "#2a2b2f"),
            (QPalette.ColorRole.Text, theme.foreground), (QPalette.ColorRole.Button, "#2d2e33"),
            (QPalette.ColorRole.ButtonText, "#e6e6e6"), (QPalette.ColorRole.Highlight, "#2f5fa7"),
            (QPalette.ColorRole.HighlightedText, "#ffffff"), (QPalette.ColorRole.ToolTipBase, "#2d2e33"),
            (QPalette.ColorRole.ToolTipText, "#e6e6e6"), (QPalette.ColorRole.PlaceholderText, "#80848c"),
        ):
            palette.setColor(role, QColor(colour))
        for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
            palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b6e75"))
    else:
        palette = app.style().standardPalette()
    app.setPalette(palette)
