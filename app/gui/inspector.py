"""The prompt inspector: exactly which tokens the model saw, with their roles."""

from __future__ import annotations

import html
from PySide6.QtWidgets import QLabel, QTextBrowser, QVBoxLayout, QWidget

from app.core.engine import CompletionStats
from app.core.fim import FimPrompt, SegmentKind

_COLOURS = {
    SegmentKind.SPECIAL: "#8250df",
    SegmentKind.PREFIX: "#0a6b2d",
    SegmentKind.SUFFIX: "#9a6700",
    SegmentKind.REPO: "#0550ae",
}


class PromptInspector(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("No completion yet.")
        self.summary.setWordWrap(True)
        self.view = QTextBrowser()
        self.view.setOpenLinks(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.view)

    def show_prompt(self, prompt: FimPrompt, stats: CompletionStats, token_texts: dict[int, str]) -> None:
        counts = ", ".join(f"{kind.value} {prompt.count(kind):,}" for kind in SegmentKind)
        self.summary.setText(
            f"<b>{prompt.layout.value.upper()}</b> · {len(prompt.tokens):,} tokens ({counts}) · "
            f"reused from cache {stats.cached_tokens:,}"
            + (f" (shifted {stats.reused_shifted:,})" if stats.reused_shifted else "")
            + (f" (from the file's snapshot {stats.restored:,})" if stats.restored else "")
            + f" · evaluated {stats.evaluated:,}"
            + (f" · prefix cut {prompt.prefix_chars_dropped:,} chars" if prompt.prefix_chars_dropped else "")
            + (f" · suffix cut {prompt.suffix_chars_dropped:,} chars" if prompt.suffix_chars_dropped else "")
        )
        # Evaluated tokens are highlighted: with moved blocks they are not just the tail.
        spans = stats.fresh_spans or ((stats.cached_tokens, len(prompt.tokens)),)  # e.g. cancelled: nothing reused
        fresh = {i for start, end in spans for i in range(start, end)}
        parts: list[str] = []
        index = 0
        for segment in prompt.segments:
            colour = _COLOURS[segment.kind]
            for token in segment.tokens:
                cached = index not in fresh
                text = html.escape(token_texts.get(token, f"<{token}>")).replace("\n", "↵<br>").replace(" ", "&nbsp;")
                style = f"color:{colour};border-right:1px solid #d0d7de;" + ("" if cached else "background:#fff8c5;")
                weight = "font-weight:bold;" if segment.kind is SegmentKind.SPECIAL else ""
                parts.append(f'<span style="{style}{weight}" title="id {token}">{text}</span>')
                index += 1
        self.view.setHtml(f'<div style="font-family:monospace;font-size:10pt">{"".join(parts)}</div>')
