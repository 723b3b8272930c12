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
from app.core.offload import ALL, AUTO, describe_gpu_layers
from app.core.settings_schema import FloatRange, float_range, int_range, rule_for
from app.gui.settings import Settings

CONTEXT_SIZES = (2048, 4096, 8192, 16384)
#: QDoubleSpinBox shows this many decimals; an open lower bound (top-p > 0) starts one step above.
_DECIMALS = 2


def _int_spin(name: str, value: int, step: int = 1, suffix: str = "") -> QSpinBox:
    lo, hi = int_range(name)
    spin = QSpinBox(minimum=lo, maximum=hi, singleStep=step, suffix=suffix)
    spin.setValue(value)
    return spin


def _check(text: str, checked: bool) -> QCheckBox:
    box = QCheckBox(text)
    box.setChecked(checked)
    return box


def _float_spin(name: str, value: float, step: float) -> QDoubleSpinBox:
    lo, hi = float_range(name)
    rule = rule_for(name)
    if isinstance(rule, FloatRange) and rule.lo_open:
        lo += 10**-_DECIMALS
    spin = QDoubleSpinBox(minimum=lo, maximum=hi, singleStep=step, decimals=_DECIMALS)
    spin.setValue(value)
    return spin


class PreferencesDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self._original = settings
        form = QFormLayout(self)
        # Every range comes from the settings' single declaration (app.core.settings_schema).
        self.max_tokens = _int_spin("max_tokens", settings.max_tokens)
        self.temperature = _float_spin("temperature", settings.temperature, step=0.05)
        self.temperature.setSpecialValueText("0 (greedy)")
        self.top_p = _float_spin("top_p", settings.top_p, step=0.05)
        self.single_line = _check("Stop at the end of the line", settings.single_line)
        self.auto_complete = _check("Complete automatically while typing", settings.auto_complete)
        self.debounce = _int_spin("debounce_ms", settings.debounce_ms, step=50, suffix=" ms")
        self.threads = _int_spin("threads", settings.threads)
        self.threads.setSpecialValueText(f"auto ({default_threads()})")
        self.n_ctx = QComboBox()
        # A size set elsewhere (the model dialog, the settings file) stays selectable:
        # otherwise OK would silently replace it with the first entry.
        for size in sorted({*CONTEXT_SIZES, settings.n_ctx}):
            self.n_ctx.addItem(f"{size:,} tokens", size)
        self.n_ctx.setCurrentIndex(max(0, self.n_ctx.findData(settings.n_ctx)))
        self.cache_reuse = QComboBox()
        self.cache_reuse.addItem("Fast: move cached code after clicks and jumps", "fast")
        self.cache_reuse.addItem("Exact: reuse only what a fresh run computes", "exact")
        self.cache_reuse.setCurrentIndex(max(0, self.cache_reuse.findData(settings.cache_reuse)))
        self.gpu_layers = QComboBox()
        # auto / CPU only / all, and a count set elsewhere (settings file, --n-gpu-layers) stays selectable.
        choices = [(AUTO, "auto (as many as fit in the GPU's free memory)"), (0, "0 (CPU only)"), (ALL, "all")]
        if settings.n_gpu_layers not in (AUTO, 0, ALL):
            choices.append((settings.n_gpu_layers, describe_gpu_layers(settings.n_gpu_layers)))
        for value, text in choices:
            self.gpu_layers.addItem(text, value)
        self.gpu_layers.setCurrentIndex(max(0, self.gpu_layers.findData(settings.n_gpu_layers)))
        self.target_gen = _float_spin("target_gen_tps", settings.target_gen_tps, step=1.0)
        self.target_gen.setSuffix(" tok/s")
        self.target_prompt = _float_spin("target_prompt_seconds", settings.target_prompt_seconds, step=5.0)
        self.target_prompt.setSuffix(" s")
        self.spaces = _check("Indent with spaces", settings.indent_with_spaces)
        self.indent_width = _int_spin("indent_width", settings.indent_width)
        self.font_size = _int_spin("font_size", settings.font_size)
        form.addRow("Max new tokens", self.max_tokens)
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-p", self.top_p)
        form.addRow("", self.single_line)
        form.addRow("", self.auto_complete)
        form.addRow("Debounce", self.debounce)
        form.addRow("Threads", self.threads)
        form.addRow("Context size (next load)", self.n_ctx)
        form.addRow("GPU layers (next load)", self.gpu_layers)
        form.addRow("Usable: generation at least", self.target_gen)
        form.addRow("Usable: 1,024-token prompt within", self.target_prompt)
        form.addRow("Cache reuse", self.cache_reuse)
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
            n_gpu_layers=int(self.gpu_layers.currentData()),
            target_gen_tps=round(self.target_gen.value(), 2),
            target_prompt_seconds=round(self.target_prompt.value(), 2),
            cache_reuse=str(self.cache_reuse.currentData()),
            indent_with_spaces=self.spaces.isChecked(),
            indent_width=self.indent_width.value(),
            font_size=self.font_size.value(),
        )
