"""Per-tab crash recovery: each modified tab's text in this instance's recovery session.

Every tab (untitled ones too) has its own record, keyed by the tab's recovery id inside
the instance's own locked session folder (``app.core.recovery``), so two running
instances never overwrite or list each other's records. A timer writes the records of
tabs changed since their last write; a record goes when its tab is saved, undone back to
the saved text, or closed with a knowing Discard.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer

from app.core.recovery import RecoveryCandidate, RecoveryStore, Resolution
from app.core.textfile import DiskState, Fingerprint, TextFormat, check_disk
from app.gui.statusbar import StatusPanel
from app.gui.tabs import DocumentTab, DocumentTabs

log = logging.getLogger("starpad.recovery")


class TabRecovery(QObject):
    """Writes, drops and adopts recovery records for the window's tabs."""

    def __init__(
        self, store: RecoveryStore, tabs: DocumentTabs, status: StatusPanel, interval_ms: int,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.tabs = tabs
        self.status = status
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.write_all)
        self.timer.start()
        tabs.tab_changed.connect(self._on_tab_changed)

    def _on_tab_changed(self, tab: DocumentTab) -> None:
        """Saved, undone back to the saved text, or replaced after the user's Save/Discard."""
        if not tab.modified:
            self.drop(tab)

    # ------------------------------------------------------------ writing
    def write_all(self) -> bool:
        """Put every modified tab's text into its record now (the timer calls it).

        True when every record on disk is current (or there is nothing unsaved to keep).
        """
        ok = True
        for tab in self.tabs.all():
            ok = self.write(tab) and ok
        return ok

    def write(self, tab: DocumentTab) -> bool:
        if not tab.modified or not tab.recovery_dirty:
            return True
        try:
            self.store.session.write(tab.recovery_id, tab.snapshot())
        except OSError as exc:
            log.warning("could not write a recovery record: %s", exc.strerror or exc)
            self.status.showMessage(f"Could not write the recovery copy: {exc.strerror or exc}", 8000)
            return False
        tab.recovery_dirty = False
        return True

    def drop(self, tab: DocumentTab) -> None:
        """The tab's text is saved or knowingly discarded: its record has done its job."""
        tab.recovery_dirty = True
        try:
            self.store.session.remove(tab.recovery_id)
        except OSError as exc:
            log.warning("could not remove a recovery record: %s", exc.strerror or exc)

    def close(self) -> None:
        """Closing after every tab was saved or knowingly discarded: nothing is left to recover."""
        self.timer.stop()
        for tab in self.tabs.all():
            self.drop(tab)
        self.store.close()

    # ------------------------------------------------------------ adopting
    def adopt(self, candidate: RecoveryCandidate) -> DocumentTab | None:
        """Take text a dead instance left into a tab, as a modified document.

        Into the file's tab when that file is open (its freshly opened text is replaced), else
        into a new tab. A file whose tab already holds unsaved text gets an untitled tab
        beside it instead. The old record is removed only after this instance's own record holds
        the text, so a crash at any moment leaves at least one copy on disk. The tab; None
        when this instance could not write its copy (the text is in the tab, the old record stays).
        """
        path = candidate.original_path
        tab = self.tabs.find_path(path) if path is not None else None
        if tab is not None and tab.modified:
            # Its tab holds other unsaved text (another restored copy of the same file): never
            # replace it; this copy goes beside it, untitled, so both can be compared and saved.
            log.info("a second unsaved copy of a file is restored as untitled")
            tab, path = None, None
        if tab is None:
            replaced = self.tabs.current if self.tabs.count() else None
            tab = self.tabs.new_tab(path)
            with tab.replacing():
                tab.editor.setPlainText(candidate.text)
            self.tabs.add(tab, candidate.text)
            if replaced is not None and replaced.pristine:
                self.tabs.close_tab(replaced)
        else:
            tab.editor.finish_loading()  # a file still loading in chunks must not append to it
            tab.editor.clear_ghost()
            tab.highlighter.forget()
            with tab.replacing():
                tab.editor.setPlainText(candidate.text)
            self.tabs.show_tab(tab)
            self.tabs.completion.open_document(tab.doc_id, candidate.text, path)
        fmt, known = recovered_file_state(candidate)
        tab.set_file_state(fmt, known if path is not None else None)
        tab.editor.document().setModified(True)
        tab.put_caret(candidate.caret)
        tab.apply_language()
        self.tabs.refresh(tab)
        tab.recovery_dirty = True
        if not self.write(tab):
            return None
        try:
            self.store.remove(candidate, Resolution.RESTORED)
        except OSError as exc:
            log.warning("could not remove the restored recovery record: %s", exc.strerror or exc)
        self.status.showMessage(f"Restored the unsaved text of {candidate.title}. Save it to keep it.", 10000)
        return tab


def recovered_file_state(candidate: RecoveryCandidate) -> tuple[TextFormat, Fingerprint | None]:
    """The restored document's format, and the disk version its text was based on.

    An unchanged file keeps that fingerprint, so saving needs no question; a file changed
    since keeps the old one, so saving asks before overwriting the other program's edits.
    """
    try:
        fmt = TextFormat.from_dict(candidate.file_format) if candidate.file_format else TextFormat.default()
    except (KeyError, TypeError, ValueError, LookupError):
        log.warning("recovery record %s: unreadable file format, using UTF-8", candidate.key)
        fmt = TextFormat.default()
    try:
        known = Fingerprint.from_dict(candidate.disk_fingerprint) if candidate.disk_fingerprint else None
    except (KeyError, TypeError, ValueError):
        known = None
    if known is not None and candidate.original_path is not None:
        check = check_disk(candidate.original_path, known, thorough=True)
        if check.state is DiskState.UNCHANGED and check.current is not None:
            known = check.current
    return fmt, known

