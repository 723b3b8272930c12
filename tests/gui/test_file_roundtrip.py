"""The real window writes back exactly what it read, asks before losing anything, notices disk changes."""

from __future__ import annotations

import codecs
import gc
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication, QInputDialog, QMessageBox

from app.gui.editor import LOAD_CHUNK_LINES, CodeEditor
from app.gui.main_window import MainWindow
from app.gui.settings import Settings

pytestmark = pytest.mark.usefixtures("qapp")
YES, NO = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
#: Characters Qt's toPlainText() would change (U+2028/U+2029 to \n, U+00A0 to a space), its
#: insertText() would turn into line breaks (U+2029, U+FDD0, U+FDD1) or drop (a leading U+FEFF;
#: a leading U+FFFE byte-swaps what follows), and other oddities.
SPECIAL = "\ufeffa\u2028b\u00a0c\u2029d\ufdd0e\ufdd1f\ufeffg\tv\x0bf\x0ce\x1bn\u0085l\U0001f600z\ufffc\ufffe"


class Dialogs:
    """Stands in for QMessageBox/QInputDialog: records what was asked, answers from a script."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.answers: list[QMessageBox.StandardButton] = []
        self.told: list[str] = []

    def question(self, _parent: object, title: str, text: str, *_args: object) -> QMessageBox.StandardButton:
        self.asked.append(f"{title}: {text}")
        assert self.answers, f"unexpected question: {title}"
        return self.answers.pop(0)

    def tell(self, _parent: object, title: str, text: str, *_args: object) -> QMessageBox.StandardButton:
        self.told.append(f"{title}: {text}")
        return QMessageBox.StandardButton.Ok


@pytest.fixture()
def dialogs(monkeypatch: pytest.MonkeyPatch) -> Dialogs:
    fake = Dialogs()
    monkeypatch.setattr(QMessageBox, "question", fake.question)
    for name in ("warning", "information", "critical"):
        monkeypatch.setattr(QMessageBox, name, fake.tell)
    return fake


@pytest.fixture()
def window(qtbot, dialogs: Dialogs) -> Iterator[MainWindow]:
    win = MainWindow(Settings(auto_complete=False))
    win.show()
    yield win
    win.editor.document().setModified(False)
    win.close()
    win.deleteLater()
    del win
    gc.collect()


def open_in(window: MainWindow, path: Path) -> None:
    assert window.open_file(path)
    window.editor.finish_loading()


def append(window: MainWindow, text: str) -> None:
    cursor = window.editor.textCursor()
    cursor.movePosition(cursor.MoveOperation.End)
    cursor.insertText(text)
    window.editor.setTextCursor(cursor)


# ----------------------------------------------------------- exact text
def test_crlf_with_bom_saves_unchanged_and_an_edit_keeps_crlf(window: MainWindow, tmp_path: Path) -> None:
    data = codecs.BOM_UTF8 + b"def f():\r\n    return 1\r\n"
    path = tmp_path / "win.py"
    path.write_bytes(data)
    open_in(window, path)
    assert window.status.format_label.text() == "UTF-8 with BOM · CRLF"
    assert window.save()
    assert path.read_bytes() == data
    append(window, "x = 2\n")
    assert window.save()
    assert path.read_bytes() == data + b"x = 2\r\n"


def test_line_separators_and_no_break_spaces_survive_open_and_save(window: MainWindow, tmp_path: Path) -> None:
    text = f"{SPECIAL}\nsecond line\n"
    data = codecs.BOM_UTF8 + text.encode()  # BOM, then the text's own U+FEFF: a "double BOM"
    path = tmp_path / "odd.txt"
    path.write_bytes(data)
    open_in(window, path)
    assert window.editor.document_text() == text
    assert window.editor.document().blockCount() == 3  # only the real line breaks are lines
    assert window.save()
    assert path.read_bytes() == data
    append(window, "!")
    assert window.save()
    assert path.read_bytes() == data + b"!"


def test_cr_only_files_keep_cr(window: MainWindow, tmp_path: Path) -> None:
    path = tmp_path / "mac.txt"
    path.write_bytes(b"one\rtwo\r")
    open_in(window, path)
    assert window.editor.document().blockCount() == 3
    append(window, "three\n")
    assert window.save()
    assert path.read_bytes() == b"one\rtwo\rthree\r"


def test_mixed_line_endings_are_shown_with_a_note(window: MainWindow, tmp_path: Path) -> None:
    data = b"a\r\nb\r\nc\n"
    path = tmp_path / "mixed.txt"
    path.write_bytes(data)
    open_in(window, path)
    assert window.status.format_label.text() == "UTF-8 · CRLF (mixed)"
    assert "mixes line endings" in window.statusBar().currentMessage()
    assert "mixes line endings" in window.status.format_label.toolTip()
    assert window.save()
    assert path.read_bytes() == data
    append(window, "d\n")
    assert window.save()
    assert path.read_bytes() == b"a\r\nb\r\nc\r\nd\r\n"
    assert window.status.format_label.text() == "UTF-8 · CRLF"


@pytest.mark.parametrize(
    ("data", "label"),
    [
        ("x = '€'\r\ny = 'ü'\r\n".encode("utf-16"), "UTF-16 LE · CRLF"),
        (codecs.BOM_UTF16_BE + "x = 'ü'\n".encode("utf-16-be"), "UTF-16 BE · LF"),
        ("s = 'naïve café €'\n".encode("cp1252"), "Windows-1252 · LF"),
    ],
)
def test_utf16_and_windows_1252_open_show_their_encoding_and_save_back(
    window: MainWindow, tmp_path: Path, data: bytes, label: str
) -> None:
    path = tmp_path / "enc.py"
    path.write_bytes(data)
    open_in(window, path)
    assert window.status.format_label.text() == label
    assert window.save()
    assert path.read_bytes() == data


def test_an_uncertain_encoding_is_chosen_by_the_person(
    window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = "# Комментарий: функция\nx = 1\n".encode("cp1251")
    path = tmp_path / "ru.py"
    path.write_bytes(data)
    offered: list[list[str]] = []

    def choose(_parent: object, _title: str, _label: str, items: list[str], *_args: object) -> tuple[str, bool]:
        offered.append(items)
        return next(item for item in items if item.startswith("Windows-1251")), True

    monkeypatch.setattr(QInputDialog, "getItem", choose)
    open_in(window, path)
    assert offered and offered[0][0] == "Windows-1251 (Cyrillic):  # Комментарий: функция"
    assert window.editor.document_text().startswith("# Комментарий")
    assert window.status.format_label.text() == "Windows-1251 (Cyrillic) · LF"
    assert window.save()
    assert path.read_bytes() == data


def test_reopen_with_another_encoding_corrects_a_wrong_guess(
    window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = "naïve €\n".encode("cp1252")  # reads fine as Windows-1252; say it was really Latin-9
    path = tmp_path / "l9.txt"
    path.write_bytes(data)
    open_in(window, path)
    assert window.status.format_label.text() == "Windows-1252 · LF"
    offered: list[list[str]] = []

    def choose(_parent: object, _title: str, _label: str, items: list[str], *_args: object) -> tuple[str, bool]:
        offered.append(items)
        return next(item for item in items if item.startswith("ISO-8859-15")), True

    monkeypatch.setattr(QInputDialog, "getItem", choose)
    assert window.reopen_with_encoding()
    assert "UTF-8" not in " ".join(offered[0])  # not valid UTF-8: not offered
    window.editor.finish_loading()
    assert window.editor.document_text() == data.decode("iso8859-15")
    assert window.status.format_label.text() == "ISO-8859-15 (Latin-9) · LF"
    assert window.save()
    assert path.read_bytes() == data


def test_cancelling_the_encoding_choice_keeps_the_editor_as_it_was(
    window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window.editor.setPlainText("precious")
    path = tmp_path / "ru.py"
    path.write_bytes("Привет мир\n".encode("cp1251"))
    monkeypatch.setattr(QInputDialog, "getItem", lambda *_a: ("", False))
    assert not window.open_file(path)
    assert window.editor.document_text() == "precious" and window.current_path is None


def test_binary_files_are_refused_with_a_message(window: MainWindow, dialogs: Dialogs, tmp_path: Path) -> None:
    window.editor.setPlainText("precious")
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\0\x01\x02" * 100)
    assert not window.open_file(path)
    assert "binary" in dialogs.told[-1]
    assert window.editor.document_text() == "precious"


def test_an_unencodable_character_offers_utf8_and_never_loses_text(
    window: MainWindow, dialogs: Dialogs, tmp_path: Path
) -> None:
    data = "café\r\n".encode("cp1252")
    path = tmp_path / "latin.txt"
    path.write_bytes(data)
    open_in(window, path)
    append(window, "Привет\n")
    dialogs.answers = [NO]
    assert not window.save()
    assert "Line 2, column 1" in dialogs.asked[-1] and "Windows-1252 cannot store" in dialogs.asked[-1]
    assert path.read_bytes() == data
    assert window.editor.document_text() == "café\nПривет\n" and window.editor.document().isModified()
    dialogs.answers = [YES]
    assert window.save()
    assert path.read_bytes() == "café\r\nПривет\r\n".encode()
    assert window.status.format_label.text() == "UTF-8 · CRLF"


# ------------------------------------------------------------- identity
def test_read_only_files_are_overwritten_only_after_asking(
    window: MainWindow, dialogs: Dialogs, tmp_path: Path
) -> None:
    path = tmp_path / "ro.txt"
    path.write_bytes(b"keep\n")
    path.chmod(0o444)
    open_in(window, path)
    append(window, "more\n")
    dialogs.answers = [NO]
    assert not window.save()
    assert dialogs.asked[-1].startswith("Overwrite read-only file?")
    assert path.read_bytes() == b"keep\n"
    dialogs.answers = [YES]
    assert window.save()
    assert path.read_bytes() == b"keep\nmore\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_saving_through_a_symlink_keeps_the_link(window: MainWindow, tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_bytes(b"a\r\n")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    open_in(window, link)
    append(window, "b\n")
    assert window.save()
    assert link.is_symlink() and real.read_bytes() == b"a\r\nb\r\n"


# ------------------------------------------------------- changes on disk
def test_a_file_changed_on_disk_is_not_overwritten_silently(
    window: MainWindow, dialogs: Dialogs, tmp_path: Path
) -> None:
    path = tmp_path / "shared.py"
    path.write_bytes(b"mine = 1\n")
    open_in(window, path)
    append(window, "mine = 2\n")
    path.write_bytes(b"theirs = 1\n")
    dialogs.answers = [NO]
    assert not window.save()
    assert dialogs.asked[-1].startswith("File changed on disk")
    assert path.read_bytes() == b"theirs = 1\n"
    assert window.editor.document_text() == "mine = 1\nmine = 2\n"
    window.check_disk_changes()  # coming back to the window: this change was already asked about
    assert len(dialogs.asked) == 1
    dialogs.answers = [YES]
    assert window.save()
    assert path.read_bytes() == b"mine = 1\nmine = 2\n"


def test_coming_back_to_the_window_offers_to_reload(
    qtbot, window: MainWindow, dialogs: Dialogs, tmp_path: Path
) -> None:
    path = tmp_path / "f.py"
    path.write_bytes(b"old = 1\n")
    open_in(window, path)
    path.write_bytes(b"new = 1\nnew = 2\n")
    dialogs.answers = [YES]
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    QApplication.sendEvent(window, QEvent(QEvent.Type.ActivationChange))
    qtbot.waitUntil(lambda: bool(dialogs.asked), timeout=5_000)
    assert "Reload it from disk?" in dialogs.asked[-1]
    window.editor.finish_loading()
    assert window.editor.document_text() == "new = 1\nnew = 2\n"
    assert not window.editor.document().isModified()


def test_keeping_ones_text_asks_once_and_then_again_before_saving(
    window: MainWindow, dialogs: Dialogs, tmp_path: Path
) -> None:
    path = tmp_path / "f.py"
    path.write_bytes(b"old = 1\n")
    open_in(window, path)
    path.write_bytes(b"theirs = 1\n")
    dialogs.answers = [NO]
    window.check_disk_changes()
    assert len(dialogs.asked) == 1
    assert window.editor.document_text() == "old = 1\n" and window.editor.document().isModified()
    window.check_disk_changes()  # the same change: not asked again
    assert len(dialogs.asked) == 1
    dialogs.answers = [NO]
    assert not window.save()
    assert dialogs.asked[-1].startswith("File changed on disk") and path.read_bytes() == b"theirs = 1\n"


def test_a_file_deleted_on_disk_is_reported_and_the_text_kept(
    window: MainWindow, dialogs: Dialogs, tmp_path: Path
) -> None:
    path = tmp_path / "gone.py"
    path.write_bytes(b"x = 1\r\n")
    open_in(window, path)
    path.unlink()
    window.check_disk_changes()
    assert "deleted" in dialogs.told[-1]
    assert window.editor.document().isModified()
    assert window.save()
    assert path.read_bytes() == b"x = 1\r\n"


# ------------------------------------------------------- the editor alone
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=40))
def test_property_editor_text_is_exact(qtbot, text: str) -> None:
    editor = CodeEditor()
    editor.setPlainText(text)
    assert editor.document_text() == text
    editor.load_text(text)
    assert editor.document_text() == text
    editor.deleteLater()


@pytest.mark.parametrize("start", ["\ufeff", "\ufffe", "\u2029", "\ufdd0"])
def test_text_starting_with_a_character_qt_would_drop_is_kept(qtbot, start: str) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.setPlainText(f"{start}abc\n{start}def")
    assert editor.document_text() == f"{start}abc\n{start}def"


def test_every_character_but_cr_survives_the_editor(qtbot) -> None:
    """Every code point but surrogates, \r (a line break, never in the editor's text) and a few
    private-use ones left free as stand-ins; each also at the start of a line (and of a chunk)."""
    editor = CodeEditor()
    qtbot.addWidget(editor)
    skipped = {0x0D, *range(0xD800, 0xE000), *range(0xF0000, 0xF0008)}
    chars = [chr(c) for c in range(1, 0x110000) if c not in skipped]
    text = "".join(f"{chars[i]}{''.join(chars[i : i + 64])}\n" for i in range(0, len(chars), 64))
    editor.setPlainText(text)
    assert editor.document_text() == text
    with qtbot.waitSignal(editor.loading_finished, timeout=30_000):
        editor.load_text(text)
    assert editor.document_text() == text


def test_a_file_the_editor_cannot_hold_exactly_is_refused(window: MainWindow, dialogs: Dialogs, tmp_path: Path) -> None:
    """U+2029 plus every private-use character: no stand-in is free, so no silent change either."""
    pools = ((0xE000, 0xF900), (0xF0000, 0xFFFFE), (0x100000, 0x10FFFE))
    private = "".join(chr(c) for start, end in pools for c in range(start, end))
    path = tmp_path / "all.txt"
    path.write_bytes(("\u2029" + private).encode())
    window.editor.setPlainText("precious")
    assert not window.open_file(path)
    assert "U+2029" in dialogs.told[-1]
    assert window.editor.document_text() == "precious"


def test_progressive_loading_keeps_special_characters(qtbot) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    text = "".join(f"{SPECIAL} line {i}\n" for i in range(LOAD_CHUNK_LINES * 3))
    with qtbot.waitSignal(editor.loading_finished, timeout=10_000):
        editor.load_text(text)
    assert editor.document_text() == text
    assert editor.document().blockCount() == LOAD_CHUNK_LINES * 3 + 1


def test_document_text_completes_a_file_still_loading(qtbot) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    text = "".join(f"x{i} = '\u2029'\n" for i in range(LOAD_CHUNK_LINES * 4))
    editor.load_text(text)
    assert editor.loading
    assert editor.document_text() == text
    assert not editor.loading


def test_set_plain_text_during_a_load_stops_it(qtbot) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.load_text("".join(f"old {i}\n" for i in range(LOAD_CHUNK_LINES * 4)))
    editor.setPlainText("new")
    assert not editor.loading
    qtbot.wait(50)
    assert editor.document_text() == "new"


def test_a_save_keeps_the_mode(window: MainWindow, dialogs: Dialogs, tmp_path: Path) -> None:
    path = tmp_path / "mode.sh"
    path.write_bytes(b"#!/bin/sh\n")
    os.chmod(path, 0o750)
    open_in(window, path)
    append(window, "echo hi\n")
    assert window.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o750
