"""The folder tree: the open folder's files, without what the workspace rules hide.

A ``QTreeView`` over a ``QFileSystemModel`` (which lists folders lazily, on its own
thread, and follows changes on disk) behind ``IgnoreFilterModel``, a
``QSortFilterProxyModel`` that asks :class:`app.core.workspace.ignore.WorkspaceRules`
about each row: ``.git``, ``node_modules``, build outputs and what ``.gitignore`` ignores
never appear. Folders sort before files, names case-insensitively.

API (for the window)::

    view = FolderView(parent)
    view.set_folder(path)            # show a folder (None: show nothing)
    view.folder() -> Path | None     # the folder shown
    view.rules() -> WorkspaceRules | None
    view.reveal(path)                # expand to a file and select it (e.g. the current tab's)
    view.index_of(path)              # its QModelIndex in the view (invalid when hidden or outside)
    view.reload_rules()              # after a .gitignore changed
    view.file_activated              # Signal(Path): a file was double-clicked or Enter was pressed on it

Folders expand on activation as usual; only files emit ``file_activated``. Renaming by
editing the tree is off: the tree shows, it does not change the disk.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import (
    QDir,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtWidgets import QAbstractItemView, QFileSystemModel, QTreeView, QWidget

from app.core.workspace.ignore import WorkspaceRules

log = logging.getLogger("starpad.folder")

_ModelIndex = QModelIndex | QPersistentModelIndex


class IgnoreFilterModel(QSortFilterProxyModel):
    """Hides the rows of a ``QFileSystemModel`` that the workspace rules ignore.

    Rows outside the folder (the path down from ``/`` that ``QFileSystemModel`` keeps
    above its root) are accepted, or the root itself would vanish with its parents.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rules: WorkspaceRules | None = None
        self._root_prefix = ""
        self.setRecursiveFilteringEnabled(False)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def set_rules(self, rules: WorkspaceRules | None) -> None:
        self.beginFilterChange()
        self._rules = rules
        # QFileSystemModel's paths use "/" on every platform.
        self._root_prefix = rules.folder.as_posix().rstrip("/") + "/" if rules is not None else ""
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def rules_changed(self) -> None:
        """Filter every row again (the rules object read its .gitignore files anew)."""
        self.beginFilterChange()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def rules(self) -> WorkspaceRules | None:
        return self._rules

    def _fs_model(self) -> QFileSystemModel:
        model = self.sourceModel()
        assert isinstance(model, QFileSystemModel)
        return model

    def filterAcceptsRow(self, source_row: int, source_parent: _ModelIndex) -> bool:  # noqa: N802 - Qt override
        if self._rules is None:
            return True
        model = self._fs_model()
        index = model.index(source_row, 0, source_parent)
        path = model.filePath(index)
        if not path.startswith(self._root_prefix):
            return True
        return not self._rules.is_ignored(path[len(self._root_prefix):], model.isDir(index))

    def lessThan(self, left: _ModelIndex, right: _ModelIndex) -> bool:  # noqa: N802 - Qt override
        """Folders first, then names without regard to case (then with it, for a stable order)."""
        model = self._fs_model()
        left_dir, right_dir = model.isDir(left), model.isDir(right)
        if left_dir != right_dir:
            return left_dir
        a, b = model.fileName(left), model.fileName(right)
        return (a.casefold(), a) < (b.casefold(), b)


class FolderView(QTreeView):
    """The open folder as a tree; see the module docstring for the API."""

    file_activated = Signal(Path)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = QFileSystemModel(self)
        self._model.setReadOnly(True)
        self._model.setFilter(QDir.Filter.AllEntries | QDir.Filter.NoDotAndDotDot | QDir.Filter.Hidden)
        self._proxy = IgnoreFilterModel(self)
        self._proxy.setSourceModel(self._model)
        self._folder: Path | None = None
        self.setModel(self._proxy)
        self.setHeaderHidden(True)
        for column in range(1, self._model.columnCount()):
            self.hideColumn(column)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setUniformRowHeights(True)  # a big folder scrolls without measuring every row
        self.setAnimated(False)
        self.setSortingEnabled(False)
        self._proxy.sort(0, Qt.SortOrder.AscendingOrder)
        self.activated.connect(self._on_activated)
        self.setEnabled(False)

    # ---------------------------------------------------------------- API
    def folder(self) -> Path | None:
        return self._folder

    def rules(self) -> WorkspaceRules | None:
        return self._proxy.rules()

    def set_folder(self, folder: Path | None) -> None:
        """Show ``folder`` (resolved); None empties the view."""
        if folder is None:
            self._folder = None
            self._proxy.set_rules(None)
            self.setRootIndex(QModelIndex())
            self._model.setRootPath("")
            self.setEnabled(False)
            return
        folder = folder.resolve()
        self._folder = folder
        rules = WorkspaceRules(folder)
        self._proxy.set_rules(rules)
        source_root = self._model.setRootPath(folder.as_posix())
        self.setRootIndex(self._proxy.mapFromSource(source_root))
        self.setEnabled(True)
        log.info("folder view at %s (git: %s)", folder, rules.in_git_repo)

    def reload_rules(self) -> None:
        """Read the ``.gitignore`` files again and re-filter every row."""
        rules = self._proxy.rules()
        if rules is not None:
            rules.reload()
            self._proxy.rules_changed()

    def reveal(self, path: Path) -> bool:
        """Expand down to ``path`` and select it; False when it is outside the folder or hidden."""
        index = self.index_of(path)
        if not index.isValid() or index == self.rootIndex():
            return False
        parent = index.parent()
        while parent.isValid() and parent != self.rootIndex():
            self.expand(parent)
            parent = parent.parent()
        self.setCurrentIndex(index)
        self.scrollTo(index)
        return True

    def index_of(self, path: Path) -> QModelIndex:
        """The view's index of ``path``; invalid when it is hidden or outside the folder.

        Look it up again after the folder changed on disk: indexes of a sorting, filtering
        model do not survive rows coming and going.
        """
        rules = self._proxy.rules()
        if rules is None or rules.relative(path) is None:
            return QModelIndex()
        return self._proxy.mapFromSource(self._model.index(path.resolve().as_posix()))

    def path_at(self, index: QModelIndex) -> Path:
        """The file or folder at a (view) index."""
        return Path(self._model.filePath(self._proxy.mapToSource(index)))

    # ----------------------------------------------------------- internals
    def _on_activated(self, index: QModelIndex) -> None:
        source = self._proxy.mapToSource(index)
        if source.isValid() and not self._model.isDir(source):
            self.file_activated.emit(Path(self._model.filePath(source)))
