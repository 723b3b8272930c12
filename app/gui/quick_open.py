"""Quick Open (Ctrl+P): type a few letters of a file's name, Enter opens it.

A popup over the top of the window: a line edit and the best matches below it, the
matched characters in bold (file name first, its folder dimmed after it). Up / Down /
Page Up / Page Down move the selection while typing goes on in the line edit; Enter
chooses, Esc closes, a click outside closes, a double-click chooses.

The folder is listed on a helper thread (:func:`app.core.workspace.ignore.list_files`,
which prunes ignored folders and stops at 20,000 files) so that opening the popup over
a huge folder never blocks the window; the popup says "Listing files…" until the list
is there and then filters what was typed meanwhile. Each ``popup()`` lists again in the
background (new files appear) while the previous list keeps serving keystrokes.

API (for the window)::

    quick = QuickOpen(window)
    quick.set_folder(path, rules=None)   # the open folder (None: "No folder open"); starts a listing
    quick.popup()                        # Ctrl+P: show, focus the field, list the folder again
    quick.file_chosen                    # Signal(Path): the absolute path of the chosen file
    quick.listing_finished               # Signal(int): a listing arrived (its file count)

Matching is :class:`app.core.workspace.fuzzy.FuzzyIndex` (Qt-free, tested there).
"""

from __future__ import annotations

import html
import logging
import threading
from pathlib import Path

from PySide6.QtCore import QEvent, QModelIndex, QObject, QPersistentModelIndex, QPoint, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QAbstractTextDocumentLayout, QKeyEvent, QPainter, QPalette, QTextDocument
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from app.core.workspace.fuzzy import FuzzyIndex, FuzzyMatch
from app.core.workspace.ignore import FileListing, WorkspaceRules, list_files

log = logging.getLogger("starpad.quick_open")

#: Rows shown; nobody scrolls past this many, and building fewer rows keeps a keystroke quick.
MAX_RESULTS = 200
#: Item data role holding the row's rich text (name with bold matches, then the dimmed folder).
HTML_ROLE = Qt.ItemDataRole.UserRole + 1
#: Item data role holding the matched positions in the relative path (a tuple of ints).
POSITIONS_ROLE = Qt.ItemDataRole.UserRole + 2
#: Item data role holding the relative path.
PATH_ROLE = Qt.ItemDataRole.UserRole + 3

_ModelIndex = QModelIndex | QPersistentModelIndex


def bold_html(text: str, positions: set[int], offset: int = 0) -> str:
    """``text`` as escaped HTML with the characters at ``positions`` (minus ``offset``) in bold."""
    out: list[str] = []
    bold = False
    for i, char in enumerate(text):
        want = (i + offset) in positions
        if want != bold:
            out.append("<b>" if want else "</b>")
            bold = want
        out.append(html.escape(char))
    if bold:
        out.append("</b>")
    return "".join(out)


def match_html(found: FuzzyMatch, dim_colour: str = "#808080") -> str:
    """A result row: the file name with its matched characters bold, then its folder, dimmed."""
    path = found.path
    cut = path.rfind("/") + 1
    positions = set(found.positions)
    name = bold_html(path[cut:], positions, cut)
    if not cut:
        return name
    folder = bold_html(path[: cut - 1], positions)
    return f'{name}&nbsp;&nbsp;<span style="color:{dim_colour}">{folder}</span>'


class _HtmlDelegate(QStyledItemDelegate):
    """Paints an item's ``HTML_ROLE`` rich text in place of its plain text."""

    def _document(self, option: QStyleOptionViewItem, index: _ModelIndex) -> QTextDocument:
        document = QTextDocument()
        document.setDefaultFont(option.font)
        document.setDocumentMargin(2)
        document.setHtml(str(index.data(HTML_ROLE) or html.escape(str(index.data() or ""))))
        return document

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _ModelIndex) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        document = self._document(opt, index)
        opt.text = ""
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        rect = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, opt, widget)
        context = QAbstractTextDocumentLayout.PaintContext()
        if opt.state & QStyle.StateFlag.State_Selected:
            context.palette.setColor(
                QPalette.ColorRole.Text, opt.palette.color(QPalette.ColorRole.HighlightedText)
            )
        painter.save()
        painter.translate(rect.topLeft())
        painter.setClipRect(QRectF(0, 0, rect.width(), rect.height()))
        document.documentLayout().draw(painter, context)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: _ModelIndex) -> QSize:  # noqa: N802 - Qt override
        base = super().sizeHint(option, index)
        height = int(self._document(option, index).size().height())
        return QSize(base.width(), max(base.height(), height))


class _Lister(QObject):
    """Lists a folder on a Python thread and hands the result back through a (queued) signal."""

    listed = Signal(int, object)  # generation, (FileListing, FuzzyIndex)

    def start(self, generation: int, folder: Path, rules: WorkspaceRules | None, stop: threading.Event) -> None:
        def work() -> None:
            try:
                listing = list_files(folder, rules, cancelled=stop.is_set)
                payload = (listing, FuzzyIndex(listing.paths))
            except Exception:  # noqa: BLE001 - a listing must never take the window down
                log.exception("listing %s failed", folder)
                payload = (FileListing(folder, []), FuzzyIndex([]))
            if stop.is_set():
                return
            try:
                self.listed.emit(generation, payload)
            except RuntimeError:  # the popup was deleted meanwhile
                pass

        threading.Thread(target=work, name="starpad-quick-open", daemon=True).start()


class QuickOpen(QFrame):
    """The Ctrl+P popup; see the module docstring for the API."""

    file_chosen = Signal(Path)
    listing_finished = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName("quickOpen")
        self.field = QLineEdit(self)
        self.field.setPlaceholderText("Go to file…")
        self.field.setClearButtonEnabled(True)
        self.results = QListWidget(self)
        self.results.setItemDelegate(_HtmlDelegate(self.results))
        self.results.setUniformItemSizes(True)
        self.results.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # typing always goes to the field
        self.status = QLabel(self)
        self.status.setObjectName("quickOpenStatus")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addWidget(self.field)
        layout.addWidget(self.results)
        layout.addWidget(self.status)
        self.resize(600, 380)

        self._folder: Path | None = None
        self._rules: WorkspaceRules | None = None
        self._listing: FileListing | None = None
        self._index: FuzzyIndex | None = None
        self._generation = 0
        self._stop = threading.Event()
        self._listing_busy = False
        # No parent: the listing thread holds the lister, so it outlives a popup deleted mid-listing
        # (the connection to the popup goes with the popup).
        self._lister = _Lister()
        self._lister.listed.connect(self._on_listed)

        self.field.textChanged.connect(lambda _text: self._update_results())
        self.field.installEventFilter(self)
        self.results.itemActivated.connect(self._choose_item)
        self._update_results()

    # ---------------------------------------------------------------- API
    def folder(self) -> Path | None:
        return self._folder

    def set_folder(self, folder: Path | None, rules: WorkspaceRules | None = None) -> None:
        """Use ``folder`` (its ``rules`` when the caller already has them) and list it in the background."""
        self._stop.set()  # a listing of the previous folder is of no use any more
        self._folder = folder.resolve() if folder is not None else None
        self._rules = rules
        self._listing, self._index = None, None
        self._listing_busy = False
        if self._folder is not None:
            self.refresh()
        self._update_results()

    def refresh(self) -> None:
        """List the folder again on the helper thread; the current list serves until it arrives."""
        if self._folder is None or self._listing_busy:
            return
        self._generation += 1
        self._stop = threading.Event()
        self._listing_busy = True
        self._lister.start(self._generation, self._folder, self._rules, self._stop)

    def is_listing(self) -> bool:
        return self._listing_busy

    def popup(self) -> None:
        """Show over the top centre of the window with an empty field, and list the folder again."""
        parent = self.parentWidget()
        if parent is not None:
            window = parent.window()
            width = max(360, min(640, int(window.width() * 0.6)))
            self.resize(width, self.height())
            self.move(window.mapToGlobal(QPoint((window.width() - width) // 2, 48)))
        self.field.clear()
        self.refresh()
        self._update_results()
        self.show()
        self.raise_()
        self.activateWindow()
        self.field.setFocus(Qt.FocusReason.PopupFocusReason)

    def current_path(self) -> Path | None:
        """The absolute path of the selected row, if any."""
        item = self.results.currentItem()
        if item is None or self._folder is None:
            return None
        return self._folder / str(item.data(PATH_ROLE))

    # ----------------------------------------------------------- internals
    def _on_listed(self, generation: int, payload: tuple[FileListing, FuzzyIndex]) -> None:
        if generation != self._generation:
            return  # an older folder's (or an older refresh's) list
        self._listing_busy = False
        selected = self.current_path()
        self._listing, self._index = payload
        log.info("listed %d files in %s%s", len(self._index), self._listing.folder,
                 " (truncated)" if self._listing.truncated else "")
        self._update_results(keep=selected)
        self.listing_finished.emit(len(self._index))

    def _update_results(self, keep: Path | None = None) -> None:
        """Filter the list by the field; ``keep`` stays selected when it still matches."""
        self.results.clear()
        if self._folder is None:
            self.status.setText("No folder open: File → Open Folder…")
            return
        if self._index is None:
            self.status.setText("Listing files…")
            return
        query = self.field.text()
        matches = self._index.search(query, limit=MAX_RESULTS)
        dim = self.palette().color(QPalette.ColorRole.PlaceholderText).name()
        for found in matches:
            item = QListWidgetItem(found.path)
            item.setData(PATH_ROLE, found.path)
            item.setData(POSITIONS_ROLE, found.positions)
            item.setData(HTML_ROLE, match_html(found, dim))
            item.setToolTip(found.path)
            self.results.addItem(item)
        if matches:
            rows = [self._folder / m.path for m in matches]
            self.results.setCurrentRow(rows.index(keep) if keep in rows else 0)
        self.status.setText(self._status_text(query))

    def _status_text(self, query: str) -> str:
        assert self._index is not None and self._listing is not None
        total = len(self._index)
        note = f" (only the first {total:,} files of this folder are searched)" if self._listing.truncated else ""
        if not query.strip():
            return f"{total:,} file{'s' if total != 1 else ''}{note}"
        count = self._index.last_match_count
        if not count:
            return f"No file matches “{query}”{note}"
        return f"{count:,} match{'es' if count != 1 else ''}{note}"

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self.field and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            return self._handle_key(event)
        return super().eventFilter(watched, event)

    def _handle_key(self, event: QKeyEvent) -> bool:
        key = event.key()
        rows = self.results.count()
        row = self.results.currentRow()
        page = max(1, self.results.height() // max(1, self.results.sizeHintForRow(0)) - 1) if rows else 1
        moves: dict[int, int] = {
            Qt.Key.Key_Down: 1, Qt.Key.Key_Up: -1, Qt.Key.Key_PageDown: page, Qt.Key.Key_PageUp: -page,
        }
        if key in moves:
            if rows:
                self.results.setCurrentRow(max(0, min(rows - 1, row + moves[key])))
            return True
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            item = self.results.currentItem()
            if item is not None:
                self._choose_item(item)
            return True
        if key == Qt.Key.Key_Escape:
            self.hide()
            return True
        return False

    def _choose_item(self, item: QListWidgetItem) -> None:
        if self._folder is None:
            return
        path = self._folder / str(item.data(PATH_ROLE))
        self.hide()
        self.file_chosen.emit(path)
