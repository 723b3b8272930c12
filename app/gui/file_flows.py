"""Opening, saving and reloading the files of tabs, with the questions each may need.

Every flow keeps the promise of the README: the text is written back exactly as it was
read, nothing is overwritten without asking when something could be lost, and whatever
goes wrong, the text stays in its tab.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget

from app.core.errors import (
    FileChangedOnDiskError,
    ReadOnlyFileError,
    TextFileError,
    UncertainEncodingError,
    UnencodableTextError,
)
from app.core.textfile import (
    DiskState,
    Fingerprint,
    TextFormat,
    check_disk,
    encoding_choices,
    encoding_display_name,
    read_text_file,
    save_text_file,
    saved_format,
)
from app.core.workspace.documents import same_path
from app.gui.statusbar import StatusPanel
from app.gui.tabs import DocumentTab, DocumentTabs

log = logging.getLogger("starpad.files")

MAX_FILE_BYTES = 20 * 1024 * 1024


class FileFlows(QObject):
    """Files in and out of tabs (see the module docstring)."""

    #: A file was opened or saved under this path: the recent-files list follows.
    file_used = Signal(object)  # Path
    #: A tab's text is on disk now (or knowingly replaced): its recovery record can go.
    saved = Signal(object)  # DocumentTab
    #: A tab closes after its unsaved text was saved or knowingly discarded: its record can go.
    closing = Signal(object)  # DocumentTab

    def __init__(self, parent: QWidget, tabs: DocumentTabs, status: StatusPanel, interactive: bool) -> None:
        super().__init__(parent)
        self._parent = parent
        self.tabs = tabs
        self.status = status
        #: False for headless runs (self-test): no modal dialogs that nobody can answer.
        self.interactive = interactive
        #: True while a save asks its questions: no reload question from a focus change amid them.
        self._disk_check_busy = False
        #: The reason the last open failed (quiet opens report it here instead of a box).
        self.last_error = ""

    # ------------------------------------------------------------- opening
    def open_file(
        self, path: Path, encoding: str | None = None, quiet: bool = False, index: int | None = None
    ) -> DocumentTab | None:
        """Open a text file exactly as it is, in its own tab (its encoding, BOM and line endings
        are kept for saving); a file already open comes to the front instead.

        A huge, binary or undecodable file is refused with a message and no tab changes; an
        8-bit file whose encoding is uncertain asks which one (``encoding`` forces one). A
        fresh untitled tab nobody typed in gives way to the file. ``quiet``: no dialogs
        (session restore), the reason goes to ``last_error``. ``index``: where a new tab goes.
        """
        path = Path(path)
        existing = self.tabs.find_path(path)
        if existing is not None and encoding is None:
            self.tabs.show_tab(existing)
            return existing
        return self._read_into(path, existing, encoding, quiet, index)

    def reload(self, tab: DocumentTab, encoding: str | None = None) -> bool:
        """Read the tab's file again from disk (its encoding kept if it is still a fit)."""
        if tab.path is None:
            return False
        return self._read_into(tab.path, tab, encoding, quiet=False) is not None

    def _read_into(
        self, path: Path, tab: DocumentTab | None, encoding: str | None, quiet: bool, index: int | None = None
    ) -> DocumentTab | None:
        """Read ``path`` into ``tab`` (None: a new tab); the tab, or None when refused."""
        try:
            loaded = read_text_file(path, encoding=encoding, max_bytes=MAX_FILE_BYTES)
        except UncertainEncodingError as exc:
            chosen = exc.guess if quiet else self._choose_encoding(tab, exc)
            return self._read_into(path, tab, chosen, quiet, index) if chosen is not None else None
        except TextFileError as exc:
            self._file_error(str(exc), quiet)
            return None
        except OSError as exc:
            self._file_error(f"cannot open {path}: {exc.strerror or exc}", quiet)
            return None
        target = tab if tab is not None else self.tabs.new_tab(path)
        target.editor.clear_ghost()
        target.highlighter.forget()
        try:
            with target.replacing():
                target.editor.load_text(loaded.text)
        except ValueError as exc:  # text the editor cannot hold exactly: refused, editor untouched
            if tab is None:
                self.tabs.discard(target)
            self._file_error(f"{path.name}: {exc}", quiet)
            return None
        target.set_file_state(loaded.format, loaded.fingerprint)
        if tab is None:
            replaced = self.tabs.current if self.tabs.count() else None
            self.tabs.add(target, loaded.text, index)
            if replaced is not None and replaced.pristine:
                self.tabs.close_tab(replaced)
        else:
            self.tabs.completion.open_document(tab.doc_id, loaded.text, path)
            self.tabs.refresh(tab)
        self.status.set_file_format(loaded.format.label, loaded.format.note or "")
        if loaded.format.note:
            self.status.showMessage(loaded.format.note, 15000)
        target.highlighter.set_visible_range(*target.editor.visible_block_range())
        target.apply_language()
        self.file_used.emit(path)
        return target

    def _choose_encoding(self, tab: DocumentTab | None, error: UncertainEncodingError) -> str | None:
        """Let the person pick the encoding the text reads right in (None: cancelled)."""
        if tab is not None and tab.file_format.encoding in error.candidates:
            return tab.file_format.encoding  # reloading: the encoding chosen before still fits
        if not self.interactive:
            return error.guess
        items = [f"{encoding_display_name(e)}:  {error.samples[e]}" for e in error.candidates]
        item, ok = QInputDialog.getItem(
            self._parent,
            "Choose the file's encoding",
            f"{error}.\nIts first line with non-ASCII characters, read in each encoding:",
            items,
            0,
            False,
        )
        return error.candidates[items.index(item)] if ok and item in items else None

    def reopen_with_encoding(self, tab: DocumentTab) -> bool:
        """Read the tab's file again in an encoding the person picks (a plausible but wrong guess)."""
        path = tab.path
        if path is None:
            self.status.showMessage("Open a file first.", 4000)
            return False
        if not self.confirm_close([tab]):
            return False
        try:
            choices = encoding_choices(path.read_bytes())
        except OSError as exc:
            self._file_error(f"cannot open {path}: {exc.strerror or exc}")
            return False
        items = [f"{encoding_display_name(encoding)}:  {sample}" for encoding, sample in choices]
        current = next((i for i, (e, _s) in enumerate(choices) if e == tab.file_format.encoding), 0)
        item, ok = QInputDialog.getItem(
            self._parent, "Reopen with encoding", f"Read {path.name} as:", items, current, False
        )
        if not ok or item not in items:
            return False
        return self.reload(tab, choices[items.index(item)][0])

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._parent, "Open file", str(Path.home()))
        if path:
            self.open_file(Path(path))

    # ------------------------------------------------------------- tabs
    def close_tab(self, tab: DocumentTab) -> bool:
        """Close a tab, asking first if it has unsaved changes (Ctrl+W, the tab's close button)."""
        if not self.confirm_close([tab]):
            return False
        self.closing.emit(tab)
        self.tabs.close_tab(tab)
        return True

    def reopen_closed(self) -> DocumentTab | None:
        """The last closed file comes back where its caret was (Ctrl+Shift+T)."""
        closed = self.tabs.pop_closed()
        tab = self.open_file(closed.path, index=closed.index) if closed is not None else None
        if closed is not None and tab is not None:
            tab.editor.finish_loading()
            tab.put_caret(closed.caret, closed.scroll)
        return tab

    # ------------------------------------------------------------- saving
    def confirm_close(self, tabs: list[DocumentTab]) -> bool:
        """Ask once about every modified tab in ``tabs``: Save them all, Discard, or Cancel.

        True when it is fine to go on (all saved, or the user chose Discard).
        """
        modified = [tab for tab in tabs if tab.modified]
        if not modified:
            return True
        if len(modified) == 1:
            tab = modified[0]
            text = f"Save changes to {tab.path.name if tab.path else tab.title}?"
        else:
            names = "\n".join(f"• {tab.path if tab.path else tab.title + ' (never saved)'}" for tab in modified)
            text = f"{len(modified)} files have unsaved changes:\n\n{names}\n\nSave them all?"
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self._parent, "Unsaved changes", text, buttons.Save | buttons.Discard | buttons.Cancel
        )
        if answer == buttons.Save:
            for tab in modified:
                self.tabs.show_tab(tab)
                if not self.save(tab):
                    return False
            return True
        return answer == buttons.Discard

    def save(self, tab: DocumentTab) -> bool:
        if tab.path is None:
            return self.save_as(tab)
        return self.write(tab, tab.path)

    def save_as(self, tab: DocumentTab) -> bool:
        path, _ = QFileDialog.getSaveFileName(self._parent, "Save as", str(tab.path or Path.home()))
        if not path:
            return False
        return self.write(tab, Path(path))

    def write(self, tab: DocumentTab, path: Path) -> bool:
        """Save the exact text in the file's own format; ask first where something could be lost.

        Asks before overwriting a file another program changed, before writing a read-only
        file, and before switching to UTF-8 when the file's encoding cannot store a character.
        Whatever happens, the text stays in the editor.
        """
        path = Path(path)
        other = self.tabs.find_path(path)
        if other is not None and other is not tab:
            self._file_error(f"{path.name} is open in another tab: save or close that one first.")
            return False
        text = tab.editor.document_text()
        fmt = tab.file_format
        same_file = tab.path is not None and same_path(path, tab.path)
        expected = tab.disk_fingerprint if same_file else None
        if same_file and expected is None and path.exists():
            # e.g. restored after a crash: this version on disk was never read here.
            if not self.ask(
                "Overwrite file?",
                f"{path.name} exists on disk and Starpad has not read this version of it.\n\n"
                "Overwrite it with your text?",
            ):
                return False
        self._disk_check_busy = True  # no reload question from a focus change amid these questions
        try:
            saved = self._save_asking(tab, path, text, fmt, expected)
        finally:
            self._disk_check_busy = False
        if saved is None:
            return False
        fingerprint, fmt = saved
        before = tab.file_format
        new_format = saved_format(text, fmt)
        self.tabs.set_path(tab, path)
        tab.set_file_state(new_format, fingerprint)
        if tab is self.tabs.current:
            self.status.set_file_format(new_format.label, new_format.note or "")
        if new_format.encoding != before.encoding or (before.mixed is not None and new_format.mixed is None):
            self.status.showMessage(f"Saved as {new_format.label}.", 8000)
        tab.editor.document().setModified(False)
        self.file_used.emit(path)
        self.saved.emit(tab)
        return True

    def _save_asking(
        self, tab: DocumentTab, path: Path, text: str, fmt: TextFormat, expected: Fingerprint | None
    ) -> tuple[Fingerprint, TextFormat] | None:
        """Save, asking where something could be lost; (fingerprint, format used) or None."""
        overwrite_readonly = False
        while True:
            try:
                return save_text_file(path, text, fmt, overwrite_readonly=overwrite_readonly, expected=expected), fmt
            except FileChangedOnDiskError:
                tab.disk_notice = notice_for(path)  # asked about this change: not again on focus
                if not self.ask(
                    "File changed on disk",
                    f"{path.name} was changed by another program since Starpad opened or saved it.\n\n"
                    "Overwrite it with your text? Its other changes would be lost. "
                    "(No: nothing is written and your text stays here.)",
                ):
                    return None
                expected = None
            except ReadOnlyFileError:
                if not self.ask(
                    "Overwrite read-only file?",
                    f"{path.name} is read-only.\n\nOverwrite it anyway? It stays read-only afterwards.",
                ):
                    return None
                overwrite_readonly = True
            except UnencodableTextError as exc:
                if fmt.encoding == "utf-8":  # only a lone surrogate gets here
                    QMessageBox.critical(self._parent, "Could not save", f"{exc} Your text is still here.")
                    return None
                if not self.ask(
                    f"Cannot save in {encoding_display_name(fmt.encoding)}",
                    f"{exc}\n\nSave {path.name} as UTF-8 instead? (No: nothing is written and your text stays here.)",
                ):
                    return None
                fmt = fmt.with_encoding("utf-8")
            except (TextFileError, OSError) as exc:
                reason = str(exc) if isinstance(exc, TextFileError) else f"{path}: {exc.strerror or exc}"
                QMessageBox.critical(self._parent, "Could not save", f"{reason}. Your text is still here.")
                return None

    # ------------------------------------------------- changes made on disk
    def check_disk_changes(self, tab: DocumentTab) -> DiskState | None:
        """Notice a change or deletion of the tab's file made by another program.

        Asks once per change: reload it, or keep the editor's text (then a save asks again
        before overwriting the newer file). A deleted file is reported; the text stays and
        counts as unsaved. Returns what was found (None: no file to compare with).
        """
        path, known = tab.path, tab.disk_fingerprint
        if self._disk_check_busy or path is None or known is None:
            return None
        self._disk_check_busy = True
        try:
            check = check_disk(path, known)
            if check.state is DiskState.UNCHANGED and check.current is not None:
                tab.disk_fingerprint = check.current  # touched with the same content: no more hashing
            if check.state in (DiskState.UNCHANGED, DiskState.UNREADABLE):
                return check.state
            notice = notice_for(path)
            if notice == tab.disk_notice:
                return check.state  # already told about this very change
            tab.disk_notice = notice
            if check.state is DiskState.DELETED:
                log.info("a file open in a tab was deleted on disk")
                tab.editor.document().setModified(True)
                if self.interactive:
                    QMessageBox.information(
                        self._parent,
                        "File deleted on disk",
                        f"{path.name} was deleted or moved away by another program.\n\n"
                        "Your text is still here; Save writes it back.",
                    )
                return check.state
            log.info("a file open in a tab was changed on disk")
            unsaved = tab.modified
            if self.ask(
                "File changed on disk",
                f"{path.name} was changed by another program.\n\nReload it from disk?"
                + (" Your unsaved changes would be lost." if unsaved else "")
                + "\n(No: keep the text shown here; saving will ask before overwriting the newer file.)",
            ):
                self.reload(tab)
            else:
                tab.editor.document().setModified(True)  # it differs from the file now
                self.status.showMessage(f"Kept your text; {path.name} on disk is newer.", 8000)
            return check.state
        finally:
            self._disk_check_busy = False

    # ------------------------------------------------------------- asking
    def ask(self, title: str, text: str) -> bool:
        """A yes/no question; headless runs (no one to answer) get no."""
        if not self.interactive:
            log.info("%s: answered no (not interactive)", title)
            return False
        yes, no = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
        return QMessageBox.question(self._parent, title, text, yes | no, no) == yes

    def _file_error(self, message: str, quiet: bool = False) -> None:
        log.info("file refused")
        self.last_error = message
        if not quiet:
            QMessageBox.warning(self._parent, "Cannot open file", message)


def notice_for(path: Path) -> tuple[DiskState, int, int] | None:
    """Identifies one change on disk (state, mtime, size), to ask about it once."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return (DiskState.DELETED, 0, 0)
    except OSError:
        return None
    return (DiskState.MODIFIED, info.st_mtime_ns, info.st_size)
