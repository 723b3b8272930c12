"""Preferences: every completion setting a user may want to tune, in one form."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QSpinBox,
    QWidget,
)

from app.core.engine import default_threads
from app.gui.settings import Settings

CONTEXT_SIZES = (2048, 4096, 8192, 16384)


class PreferencesDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self._original = settings
        form = QFormLayout(self)
        self.max_tokens = QSpinBox(minimum=1, maximum=1024, value=settings.max_tokens)
        self.temperature = QDoubleSpinBox(minimum=0.0, maximum=2.0, singleStep=0.05, value=settings.temperature)
        self.temperature.setSpecialValueText("0 (greedy)")
        self.top_p = QDoubleSpinBox(minimum=0.05, maximum=1.0, singleStep=0.05, value=settings.top_p)
        self.single_line = QCheckBox("Stop at the end of the line", checked=settings.single_line)
        self.auto_complete = QCheckBox("Complete automatically while typing", checked=settings.auto_complete)
        self.debounce = QSpinBox(minimum=0, maximum=5000, singleStep=50, suffix=" ms", value=settings.debounce_ms)
        self.threads = QSpinBox(minimum=0, maximum=256, value=settings.threads)
        self.threads.setSpecialValueText(f"auto ({default_threads()})")
        self.n_ctx = QComboBox()
        for size in CONTEXT_SIZES:
            self.n_ctx.addItem(f"{size:,} tokens", size)
        self.n_ctx.setCurrentIndex(max(0, self.n_ctx.findData(settings.n_ctx)))
        self.spaces = QCheckBox("Indent with spaces", checked=settings.indent_with_spaces)
        self.indent_width = QSpinBox(minimum=1, maximum=8, value=settings.indent_width)
        self.font_size = QSpinBox(minimum=6, maximum=40, value=settings.font_size)
        form.addRow("Max new tokens", self.max_tokens)
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-p", self.top_p)
        form.addRow("", self.single_line)
        form.addRow("", self.auto_complete)
        form.addRow("Debounce", self.debounce)
        form.addRow("Threads", self.threads)
        form.addRow("Context size (next load)", self.n_ctx)
        form.addRow("", self.spaces)
        form.addRow("Indent width", self.indent_width)
        form.addRow("Font size", self.font_size)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def result_settings(self) -> Settings:
        """A copy of the settings with the form's values."""
        return dataclasses.replace(
            self._original,
            max_tokens=self.max_tokens.value(),
            temperature=round(self.temperature.value(), 3),
            top_p=round(self.top_p.value(), 3),
            single_line=self.single_line.isChecked(),
            auto_complete=self.auto_complete.isChecked(),
            debounce_ms=self.debounce.value(),
            threads=self.threads.value(),
            n_ctx=int(self.n_ctx.currentData()),
            indent_with_spaces=self.spaces.isChecked(),
            indent_width=self.indent_width.value(),
            font_size=self.font_size.value(),
        )
