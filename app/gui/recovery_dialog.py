"""The recovery dialog: unsaved text left by instances that are gone, offered at every start.

Every start path (no argument, a file argument) goes through ``offer_recovery``: a start
that skipped it would leave text behind that nobody is ever shown. The user restores one
document into the window, discards a document after a confirmation, or keeps everything
for later; nothing is deleted by closing the dialog.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QStandardPaths, Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.core.recovery import RecoveryCandidate, RecoveryScan, RecoveryStore, Resolution

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow

log = logging.getLogger("starpad.recovery")

PREVIEW_LINES = 40


def app_data_dir() -> Path:
    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(location or tempfile.gettempdir())


def default_recovery_store() -> RecoveryStore:
    """The store every window uses, with the old single ``recovery.txt`` still read once."""
    base = app_data_dir()
    return RecoveryStore(base / "recovery", legacy_file=base / "recovery.txt")


def describe_time(saved_at: float, now: float | None = None) -> str:
    """``14:03 today``-style wording: the user recognises when they last typed."""
    now = time.time() if now is None else now
    stamp = time.localtime(saved_at)
    if time.strftime("%Y-%m-%d", stamp) == time.strftime("%Y-%m-%d", time.localtime(now)):
        return time.strftime("today %H:%M:%S", stamp)
    return time.strftime("%Y-%m-%d %H:%M", stamp)


def describe(candidate: RecoveryCandidate) -> str:
    where = str(candidate.original_path) if candidate.original_path is not None else "never saved"
    origin = " (from an older Starpad)" if candidate.legacy else ""
    return f"{candidate.title} — {where}\nunsaved text from {describe_time(candidate.saved_at)}{origin}"


class RecoveryDialog(QDialog):
    """Lists the candidates, one per file; Restore one or all (each into its own tab), Discard
    (confirmed), or keep them for Later."""

    def __init__(
        self,
        store: RecoveryStore,
        scan: RecoveryScan,
        preferred: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Recover unsaved text")
        self.setModal(True)
        self.resize(760, 480)
        self.store = store
        #: The candidates the user chose to restore (in list order); empty for Later.
        self.restored: list[RecoveryCandidate] = []
        self.candidates = scan.ordered(preferred)

        layout = QVBoxLayout(self)
        first = self.candidates[0] if self.candidates else None
        if first is not None and first.matches(preferred):
            intro = (
                f"<b>{first.title}</b> has unsaved changes from {describe_time(first.saved_at)} that were not saved "
                "before Starpad stopped. Restore puts them in the editor in place of the file's text; "
                "the file itself changes only when you save."
            )
        else:
            intro = (
                "Starpad stopped before this text was saved. Restore puts the selected text into a tab, "
                "Restore all brings back every one, each in its own tab; what you leave stays here "
                "for the next start until you restore or discard it."
            )
        self.intro = QLabel(intro)
        self.intro.setWordWrap(True)
        layout.addWidget(self.intro)
        self.notes = QLabel("\n".join(scan.notes))
        self.notes.setWordWrap(True)
        self.notes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notes.setVisible(bool(scan.notes))
        layout.addWidget(self.notes)

        splitter = QSplitter(Qt.Orientation.Vertical)
        self.list = QListWidget()
        for candidate in self.candidates:
            item = QListWidgetItem(describe(candidate))
            item.setData(Qt.ItemDataRole.UserRole, candidate.key)
            item.setToolTip(candidate.preview())
            self.list.addItem(item)
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setPlaceholderText("The first lines of the selected text appear here.")
        splitter.addWidget(self.list)
        splitter.addWidget(self.preview)
        layout.addWidget(splitter, 1)

        buttons = QDialogButtonBox()
        self.restore_button = QPushButton("Restore")
        self.restore_button.setDefault(True)
        self.restore_all_button = QPushButton(f"Restore all ({len(self.candidates)})")
        self.restore_all_button.setVisible(len(self.candidates) > 1)
        self.discard_button = QPushButton("Discard…")
        self.later_button = QPushButton("Later")
        self.later_button.setToolTip("Keep everything listed here for the next start")
        buttons.addButton(self.restore_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.restore_all_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.discard_button, QDialogButtonBox.ButtonRole.DestructiveRole)
        buttons.addButton(self.later_button, QDialogButtonBox.ButtonRole.RejectRole)
        layout.addWidget(buttons)
        # Clicked signals, not the box's accepted/rejected: Discard must not close the dialog.
        self.restore_button.clicked.connect(self.restore_selected)
        self.restore_all_button.clicked.connect(self.restore_all)
        self.discard_button.clicked.connect(self.discard_selected)
        self.later_button.clicked.connect(self.reject)
        self.list.currentRowChanged.connect(self._show_preview)
        self.list.currentRowChanged.connect(lambda _row: self._update_buttons())
        self.list.itemDoubleClicked.connect(lambda _item: self.restore_selected())
        if self.candidates:
            self.list.setCurrentRow(0)
        self._update_buttons()

    def selected(self) -> RecoveryCandidate | None:
        row = self.list.currentRow()
        return self.candidates[row] if 0 <= row < len(self.candidates) else None

    def _show_preview(self, row: int) -> None:
        candidate = self.candidates[row] if 0 <= row < len(self.candidates) else None
        if candidate is None:
            self.preview.clear()
            return
        lines = candidate.text.split("\n")
        more = len(lines) - PREVIEW_LINES
        self.preview.setPlainText("\n".join(lines[:PREVIEW_LINES]) + (f"\n… {more} more lines" if more > 0 else ""))

    def _update_buttons(self) -> None:
        has = self.selected() is not None
        self.restore_button.setEnabled(has)
        self.discard_button.setEnabled(has)
        self.restore_all_button.setText(f"Restore all ({len(self.candidates)})")
        self.restore_all_button.setVisible(len(self.candidates) > 1)

    def restore_selected(self) -> None:
        candidate = self.selected()
        if candidate is None:
            return
        self.restored = [candidate]
        self.accept()

    def restore_all(self) -> None:
        self.restored = list(self.candidates)
        self.accept()

    def confirm_discard(self, candidate: RecoveryCandidate) -> bool:
        answer = QMessageBox.question(
            self,
            "Discard unsaved text",
            f"Discard the unsaved text of {candidate.title} from {describe_time(candidate.saved_at)}?\n"
            "It cannot be recovered afterwards.",
            QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Discard

    def discard_selected(self) -> None:
        candidate = self.selected()
        if candidate is None or not self.confirm_discard(candidate):
            return
        try:
            self.store.remove(candidate, Resolution.DISCARDED)
        except OSError as exc:
            QMessageBox.warning(self, "Could not discard", f"{candidate.source}: {exc.strerror or exc}")
            return
        row = self.list.currentRow()
        del self.candidates[row]
        self.list.takeItem(row)
        self._update_buttons()
        if not self.candidates:
            self.reject()  # nothing left to decide


def offer_recovery(window: MainWindow, preferred: Path | None = None) -> list[RecoveryCandidate]:
    """At a start: list what dead instances left, per file, and let the user decide; the
    candidates restored (each into its own tab, or into the tab of its file when that is open).

    ``preferred`` (the file argument, even if it could not be opened) is listed first. A
    non-interactive window (self-test, headless) shows nothing and keeps everything for a
    later, interactive start.
    """
    store = window.recovery
    scan = store.scan()
    if not scan.candidates and not scan.notes:
        return []
    if not window.interactive:
        log.warning("%d recoverable document(s) kept for an interactive start", len(scan.candidates))
        store.release()
        return []
    chosen: list[RecoveryCandidate] = []
    if scan.candidates:
        dialog = RecoveryDialog(store, scan, preferred=preferred or window.current_path, parent=window)
        dialog.exec()
        chosen = dialog.restored
        dialog.deleteLater()
    else:
        QMessageBox.warning(window, "Damaged recovery data", "\n\n".join(scan.notes))
    restored = [candidate for candidate in chosen if window.adopt_recovery(candidate)]
    store.release()
    return restored
