"""Tabs: one editor per open document, each with its own undo history, ghost, colours,
language, file state, caret and recovery record.

``DocumentTab`` is everything one document needs on screen; ``DocumentTabs`` is the tab
widget, mirroring the Qt-free ``OpenDocuments`` (order, current tab, closed-tab stack) and
telling the completion bridge which document is current, so the session switches its
current document (and the engine its KV snapshot) with the tab in front.

There is always at least one tab: closing the last one leaves a fresh untitled tab, so
the window always has an editor to type in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from pygments.lexer import Lexer
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QTabWidget, QWidget

from app.core.recovery import DocumentSnapshot, new_document_id
from app.core.textfile import DiskState, Fingerprint, TextFormat
from app.core.workspace.documents import ClosedTab, OpenDocuments
from app.gui.completion_bridge import CompletionBridge
from app.gui.editor import CodeEditor
from app.gui.highlighter import LexerResolver, PygmentsHighlighter
from app.gui.theme import LIGHT, Theme

log = logging.getLogger("starpad.tabs")

UNTITLED = "untitled"
#: Characters of the text language detection looks at.
_DETECT_CHARS = 4000


def _untitled(number: int) -> str:
    return UNTITLED if number == 1 else f"{UNTITLED} {number}"


class DocumentTab(QObject):
    """One open document: editor, highlighter, language, file state and recovery bookkeeping."""

    def __init__(self, doc_id: str, path: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        #: The completion session's key for this document (stays the same through Save As).
        self.doc_id = doc_id
        self.path = path
        #: "untitled", "untitled 2"…: tells untitled tabs apart (set by the tab widget).
        self.untitled_name = UNTITLED
        self.editor = CodeEditor()
        self.highlighter = PygmentsHighlighter(self.editor.document())
        self.lexers = LexerResolver(self)
        self.lexers.resolved.connect(self._on_lexer_resolved)
        self._lexer_applied = 0
        #: The toolbar's language for this tab; "" detects it from the name and the text.
        self.language = ""
        #: How the file is stored (encoding, BOM, line endings): saves write it back that way.
        self.file_format = TextFormat.default()
        #: The file as last read or written; None for a new document.
        self.disk_fingerprint: Fingerprint | None = None
        #: The on-disk change the person was last told about (asked once per change, not per focus).
        self.disk_notice: tuple[DiskState, int, int] | None = None
        #: This tab's record in the instance's recovery session (untitled tabs have one too).
        self.recovery_id = new_document_id()
        #: Changed since its recovery record was last written.
        self.recovery_dirty = True
        #: True while the window itself replaces the text (opening a file): not a user edit.
        self.replacing_text = False
        self.editor.document().contentsChanged.connect(self._on_contents_changed)
        self.editor.verticalScrollBar().valueChanged.connect(self._on_scrolled)

    # ------------------------------------------------------------ queries
    @property
    def title(self) -> str:
        return self.path.name if self.path is not None else self.untitled_name

    @property
    def modified(self) -> bool:
        return self.editor.document().isModified()

    @property
    def pristine(self) -> bool:
        """A fresh untitled tab nobody typed in: opening a file takes its place."""
        return self.path is None and not self.modified and self.editor.document().isEmpty()

    @property
    def language_pending(self) -> bool:
        """A lexer is still being looked up (tests and the benchmark wait for it)."""
        return self.lexers.latest_request != self._lexer_applied

    def not_an_edit(self) -> bool:
        """Opening a file, a file still loading, or colours arriving: the text changes
        without the user, and completions follow the user."""
        return self.replacing_text or self.editor.loading or self.highlighter.applying_formats

    def caret(self) -> int:
        return self.editor.textCursor().position()

    def scroll(self) -> int:
        return self.editor.verticalScrollBar().value()

    def snapshot(self) -> DocumentSnapshot:
        """What the recovery record keeps of this tab."""
        return DocumentSnapshot(
            text=self.editor.document_text(),  # exact, unlike toPlainText
            path=self.path,
            caret=self.caret(),
            file_format=self.file_format.as_dict(),
            disk_fingerprint=self.disk_fingerprint.as_dict() if self.disk_fingerprint is not None else None,
        )

    # ------------------------------------------------------------ changes
    @contextlib.contextmanager
    def replacing(self) -> Iterator[None]:
        """The window changes the text or the caret: not the user's edit or move."""
        self.replacing_text = True
        try:
            yield
        finally:
            self.replacing_text = False

    def put_caret(self, caret: int, scroll: int | None = None) -> None:
        """Place the caret (and the view) where the user was, clamped to the text."""
        cursor = self.editor.textCursor()
        cursor.setPosition(max(0, min(caret, self.editor.document().characterCount() - 1)))
        with self.replacing():
            self.editor.setTextCursor(cursor)
        if scroll is not None:
            self.editor.verticalScrollBar().setValue(scroll)
        self.highlighter.set_visible_range(*self.editor.visible_block_range())

    def set_file_state(self, fmt: TextFormat, fingerprint: Fingerprint | None) -> None:
        """How the file is stored and which version of it the text is based on.

        Recovery restores these with the text, so a recovered CRLF file is saved as CRLF and
        a save still notices a newer file on disk.
        """
        self.file_format = fmt
        self.disk_fingerprint = fingerprint
        self.disk_notice = None

    def set_language(self, alias: str) -> None:
        """The toolbar's choice for this tab ("" detects it)."""
        self.language = alias
        self.apply_language()

    def apply_language(self) -> None:
        if self.language:
            self.lexers.for_alias(self.language)
        else:
            self.lexers.for_file(self.path.name if self.path else None, self.editor.toPlainText()[:_DETECT_CHARS])

    def set_theme(self, theme: Theme) -> None:
        self.editor.set_theme(theme)
        self.highlighter.set_style(theme.pygments_style)

    def shutdown(self) -> None:
        """The tab closes: stop background work that would otherwise outlive it."""
        self.highlighter.forget()
        self.lexers.shutdown()

    # ------------------------------------------------------------ signals
    def _on_contents_changed(self) -> None:
        self.recovery_dirty = True

    def _on_scrolled(self, _value: int) -> None:
        self.highlighter.set_visible_range(*self.editor.visible_block_range())

    @Slot(int, object)
    def _on_lexer_resolved(self, request_id: int, lexer: Lexer) -> None:
        if request_id == self.lexers.latest_request:
            self._lexer_applied = request_id
            self.highlighter.set_lexer(lexer)


class DocumentTabs(QTabWidget):
    """The tab widget; ``documents`` is its Qt-free state (see the module docstring)."""

    #: The tab in front changed (the window updates its title, toolbar and status).
    current_tab_changed = Signal(object)  # DocumentTab
    #: A tab's modified state or name changed (its label and the window title follow).
    tab_changed = Signal(object)  # DocumentTab
    #: The user pressed a tab's close button (the window asks about unsaved text first).
    close_requested = Signal(object)  # DocumentTab
    #: Ctrl+Space in any editor.
    completion_requested = Signal()

    def __init__(self, completion: CompletionBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.completion = completion
        self.documents = OpenDocuments()
        self._tabs: dict[str, DocumentTab] = {}
        self._theme: Theme = LIGHT
        #: Called on every new tab (font, indentation: the window's settings).
        self.setup_editor: Callable[[CodeEditor], None] = lambda _editor: None
        self._adding = False
        self.setTabsClosable(True)
        self.setMovable(True)
        self.setDocumentMode(True)
        self.setUsesScrollButtons(True)
        self.tabCloseRequested.connect(self._on_close_clicked)
        self.currentChanged.connect(self._on_current_changed)
        self.tabBar().tabMoved.connect(self._on_tab_moved)

    # ------------------------------------------------------------ queries
    @property
    def current(self) -> DocumentTab:
        """The tab in front (there is always one once the window is built)."""
        tab = self._tab_at(self.currentIndex())
        if tab is None:
            raise LookupError("no tab is open")
        return tab

    def all(self) -> list[DocumentTab]:
        """Every tab, in the order shown."""
        return [tab for tab in (self._tab_at(i) for i in range(self.count())) if tab is not None]

    def modified(self) -> list[DocumentTab]:
        return [tab for tab in self.all() if tab.modified]

    def find_path(self, path: Path) -> DocumentTab | None:
        doc_id = self.documents.find(path)
        return self._tabs[doc_id] if doc_id is not None else None

    def _tab_at(self, index: int) -> DocumentTab | None:
        widget = self.widget(index)
        for tab in self._tabs.values():
            if tab.editor is widget:
                return tab
        return None

    def _new_doc_id(self, path: Path | None) -> str:
        """Files are keyed by their real path, so the engine's per-document KV snapshot follows
        the file; an untitled text (or a second tab of a renamed file) gets a fresh key."""
        if path is not None:
            key = os.path.realpath(path)
            if key not in self.documents:
                return key
            return f"{key}#{secrets.token_hex(4)}"
        return f"untitled:{new_document_id()}"

    # ------------------------------------------------------------ changes
    def new_tab(self, path: Path | None = None) -> DocumentTab:
        """A new tab, not shown yet: fill its editor, then ``add`` it (or ``discard`` it)."""
        tab = DocumentTab(self._new_doc_id(path), path, self)
        taken = {t.untitled_name for t in self._tabs.values() if t.path is None}
        number = next(n for n in range(1, len(taken) + 2) if _untitled(n) not in taken)
        tab.untitled_name = _untitled(number)
        self.setup_editor(tab.editor)
        tab.set_theme(self._theme)
        return tab

    def add(self, tab: DocumentTab, text: str, index: int | None = None) -> None:
        """Show ``tab`` (holding ``text``) after the current tab and bring it to the front.

        ``text`` is the whole document even while a big file is still loading into the editor.
        """
        self.documents.add(tab.doc_id, tab.path, index)
        position = self.documents.index(tab.doc_id)
        self._tabs[tab.doc_id] = tab
        self.completion.attach(tab.doc_id, tab.editor, tab.not_an_edit)
        editor = tab.editor
        editor.document().contentsChanged.connect(lambda: self._on_edited(tab))
        editor.document().modificationChanged.connect(lambda _m: self.refresh(tab))
        editor.completion_requested.connect(self.completion_requested)
        self._adding = True
        try:
            self.insertTab(position, editor, tab.title)
            self.setCurrentIndex(position)
        finally:
            self._adding = False
        self.completion.open_document(tab.doc_id, text, tab.path)  # the session's current document now
        self.refresh(tab)
        self.current_tab_changed.emit(tab)

    def discard(self, tab: DocumentTab) -> None:
        """A tab ``new_tab`` made that is not wanted after all (its file could not be opened)."""
        tab.shutdown()
        tab.editor.deleteLater()
        tab.deleteLater()

    def close_tab(self, tab: DocumentTab) -> None:
        """Close without asking (the window asked); the last tab is replaced by a fresh one."""
        if tab.doc_id not in self._tabs:
            return
        self.documents.remove(tab.doc_id, tab.caret(), tab.scroll())
        del self._tabs[tab.doc_id]
        self.completion.close_document(tab.doc_id)
        index = self.indexOf(tab.editor)
        self._adding = True  # the current tab is chosen below, not by removeTab's guess
        try:
            self.removeTab(index)
        finally:
            self._adding = False
        self.discard(tab)
        if not self._tabs:
            self.new_untitled()
            return
        following = self.documents.current
        if following is not None:
            self.setCurrentWidget(self._tabs[following].editor)
            self._on_current_changed(self.currentIndex())

    def new_untitled(self) -> DocumentTab:
        tab = self.new_tab(None)
        self.add(tab, "")
        return tab

    def pop_closed(self) -> ClosedTab | None:
        return self.documents.pop_closed()

    def cycle(self, step: int) -> None:
        """Ctrl+Tab (+1) and Ctrl+Shift+Tab (-1), wrapping around."""
        target = self.documents.neighbour(step)
        if target is not None:
            self.setCurrentWidget(self._tabs[target].editor)

    def show_tab(self, tab: DocumentTab) -> None:
        self.setCurrentWidget(tab.editor)
        tab.editor.setFocus()

    def set_path(self, tab: DocumentTab, path: Path) -> None:
        """Saved under ``path``: the prompt's path and the tab's label follow."""
        tab.path = path
        self.documents.set_path(tab.doc_id, path)
        if tab.doc_id in self.completion.session.documents:  # else it comes back with its path
            self.completion.session.set_path(tab.doc_id, path)
        self.refresh(tab)

    def set_theme(self, theme: Theme) -> None:
        self._theme = theme
        for tab in self._tabs.values():
            tab.set_theme(theme)

    def refresh(self, tab: DocumentTab) -> None:
        """The tab's label and tooltip say its name, whether it is modified, and where it is."""
        index = self.indexOf(tab.editor)
        if index < 0:
            return
        self.setTabText(index, f"{tab.title}{' •' if tab.modified else ''}")
        self.setTabToolTip(index, str(tab.path) if tab.path is not None else "not saved yet")
        self.tab_changed.emit(tab)

    def shutdown(self) -> None:
        for tab in list(self._tabs.values()):
            tab.shutdown()

    # ------------------------------------------------------------ signals
    def _on_edited(self, tab: DocumentTab) -> None:
        if not tab.not_an_edit():
            self.completion.text_edited(tab.doc_id)

    def _on_current_changed(self, index: int) -> None:
        if self._adding:
            return
        tab = self._tab_at(index)
        if tab is None:
            return
        self.documents.set_current(tab.doc_id)
        self.completion.switch_to(tab.doc_id, tab.path)
        self.current_tab_changed.emit(tab)

    def _on_close_clicked(self, index: int) -> None:
        tab = self._tab_at(index)
        if tab is not None:
            self.close_requested.emit(tab)

    def _on_tab_moved(self, _from: int, to: int) -> None:
        tab = self._tab_at(to)
        if tab is not None:
            self.documents.move(tab.doc_id, to)
