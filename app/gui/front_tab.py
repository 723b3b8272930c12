"""The tab in front, as scripts, benchmarks and tests see the window.

``window.editor``, ``window.current_path``, ``window.save()``… each mean "the tab in front";
they are kept in this mixin so the window class itself stays wiring. The mixin needs the
window's ``tabs`` (``DocumentTabs``) and ``files`` (``FileFlows``).
"""

from __future__ import annotations

from pathlib import Path

from app.core.textfile import DiskState
from app.gui.editor import CodeEditor
from app.gui.file_flows import FileFlows
from app.gui.highlighter import LexerResolver, PygmentsHighlighter
from app.gui.tabs import DocumentTab, DocumentTabs


class FrontTab:
    """Properties and file actions of the tab in front (mixed into ``MainWindow``)."""

    tabs: DocumentTabs
    files: FileFlows

    @property
    def tab(self) -> DocumentTab:
        return self.tabs.current

    @property
    def editor(self) -> CodeEditor:
        return self.tabs.current.editor

    @property
    def highlighter(self) -> PygmentsHighlighter:
        return self.tabs.current.highlighter

    @property
    def lexers(self) -> LexerResolver:
        return self.tabs.current.lexers

    @property
    def current_path(self) -> Path | None:
        return self.tabs.current.path

    @property
    def language_pending(self) -> bool:
        """A lexer is still being looked up (tests and the benchmark wait for it)."""
        return self.tabs.current.language_pending

    def reopen_with_encoding(self) -> bool:
        return self.files.reopen_with_encoding(self.tab)

    def save(self) -> bool:
        return self.files.save(self.tab)

    def save_as(self) -> bool:
        return self.files.save_as(self.tab)

    def _write(self, path: Path) -> bool:
        return self.files.write(self.tab, path)

    def check_disk_changes(self) -> DiskState | None:
        return self.files.check_disk_changes(self.tab)
