"""Syntax highlighting for every language Pygments knows, without freezing on big files.

Pygments needs the whole text to lex correctly (a string opened 300 lines up changes
everything below) and takes ~0.8 s for 5,000 lines in one go. So lexing runs as a
generator consumed in slices of a few milliseconds on the event loop, and the visible
lines are lexed on their own first so the user sees colour at once. Formats are kept
per block number and shifted when lines are inserted or removed, so they stay aligned
while a fresh pass catches up. They are put on the lines in and near the view only.

Beyond ``FULL_LEX_CHARS`` (about 1 MB: Pygments reads Python at ~0.3 MB/s here) only the
lines around the view are lexed, from the nearest line above that starts a statement.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from enum import Enum
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from pygments.lexer import Lexer
from pygments.lexers import get_all_lexers, get_lexer_by_name, get_lexer_for_filename, guess_lexer
from pygments.styles import get_style_by_name
from pygments.token import _TokenType
from pygments.util import ClassNotFound
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QTextBlock, QTextCharFormat, QTextDocument, QTextFormat, QTextLayout

log = logging.getLogger("starpad.highlight")

SLICE_MS = 6.0
RELEX_DELAY_MS = 120
#: Documents up to this many characters are lexed whole; beyond, only around the view.
FULL_LEX_CHARS = 1_000_000
#: Lines above and below the view that get their colours too, so a short scroll shows them.
VIEW_MARGIN_LINES = 40
#: How far above the view a windowed lex looks for a line that starts a statement.
WINDOW_LOOKBACK_LINES = 200
#: A scroll through a big file is lexed once it pauses this long.
WINDOW_DELAY_MS = 30
#: Format ranges with this property belong to someone else (the editor's ghost text).
_OTHERS = QTextFormat.Property.UserProperty
Format = tuple[int, int, QTextCharFormat]


@lru_cache(maxsize=1)
def all_languages() -> list[tuple[str, str]]:
    """(display name, alias) for every Pygments lexer with an alias, sorted by name."""
    languages = [(name, aliases[0]) for name, aliases, _files, _mimes in get_all_lexers() if aliases]
    return sorted(languages, key=lambda item: item[0].lower())


@lru_cache(maxsize=1)
def _lexer_tables() -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(exact file name → aliases, ``.ext`` → aliases) from Pygments' static lexer table.

    Pygments' own file-name lookup compiles ~900 glob patterns into regular expressions
    on first use (~200 ms); plain dictionary lookups answer the common cases for free.
    """
    names: dict[str, list[str]] = {}
    extensions: dict[str, list[str]] = {}
    for _name, aliases, patterns, _mimes in get_all_lexers():
        if not aliases:
            continue
        for pattern in patterns:
            if not any(c in pattern for c in "*?["):
                names.setdefault(pattern, []).append(aliases[0])
            elif pattern.startswith("*.") and not any(c in pattern[2:] for c in "*?["):
                extensions.setdefault(pattern[1:].lower(), []).append(aliases[0])

    def unique(table: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
        return {key: tuple(dict.fromkeys(values)) for key, values in table.items()}

    return unique(names), unique(extensions)


def _fast_lexer_alias(filename: str) -> str | None:
    """The one lexer that claims this exact name or, failing that, this extension."""
    names, extensions = _lexer_tables()
    candidates = names.get(filename)
    if candidates is None and "." in filename:
        candidates = extensions.get(filename[filename.rfind(".") :].lower())
    return candidates[0] if candidates and len(candidates) == 1 else None


def detect_lexer(filename: str | None, text: str) -> Lexer:
    """Language from the file name, then the content, else plain text."""
    options = {"stripnl": False, "ensurenl": False}
    if filename:
        alias = _fast_lexer_alias(filename)
        if alias is not None:  # unambiguous: no need for Pygments' scoring of every lexer
            return get_lexer_by_name(alias, **options)
        try:
            return get_lexer_for_filename(filename, text[:4000], **options)
        except ClassNotFound:
            pass
    if text.strip():
        try:
            return guess_lexer(text[:4000], **options)
        except ClassNotFound:
            pass
    return get_lexer_by_name("text", **options)


def lexer_by_alias(alias: str) -> Lexer:
    return get_lexer_by_name(alias, stripnl=False, ensurenl=False)


class LexerResolver(QObject):
    """Finds lexers on a helper thread; results arrive through ``resolved`` on the GUI thread.

    Cold, Pygments compiles ~900 file-name patterns and then the chosen lexer's regular
    expressions: ~300 ms for the first ``*.py`` here, a visible freeze when opening a file.
    Lexer objects are plain Python and never touch Qt, so building them off the GUI
    thread is safe; only the newest request's answer is used.
    """

    resolved = Signal(int, object)  # request id, Lexer

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="starpad-lexer")
        self.latest_request = 0

    def for_file(self, filename: str | None, text: str) -> int:
        return self._submit(lambda: detect_lexer(filename, text))

    def for_alias(self, alias: str) -> int:
        return self._submit(lambda: lexer_by_alias(alias))

    def _submit(self, make: Callable[[], Lexer]) -> int:
        self.latest_request += 1
        self._pool.submit(self._run, self.latest_request, make)
        return self.latest_request

    def _run(self, request_id: int, make: Callable[[], Lexer]) -> None:
        if request_id != self.latest_request:
            return  # superseded while queued
        try:
            lexer = make()
        except Exception:  # noqa: BLE001 - a broken lexer plugin must not kill the editor
            log.exception("lexer lookup failed; using plain text")
            lexer = get_lexer_by_name("text", stripnl=False, ensurenl=False)
        try:
            self.resolved.emit(request_id, lexer)
        except RuntimeError:
            pass  # the window closed meanwhile

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class HighlightMode(Enum):
    """How much of the document Pygments reads."""

    WHOLE = "whole"  # the whole text, in slices: exact colours everywhere
    WINDOW = "window"  # only the lines around the view: big files


class PygmentsHighlighter(QObject):
    """Pygments colours, computed in slices and applied only to the lines around the view.

    Not a QSyntaxHighlighter: that one is called for every line Qt inserts and gives every
    line of the document a layout of its own, which made a 20 MB file take over a
    gigabyte and most of its loading time. Here the colours of a line go straight into its
    QTextLayout (as the ghost text does) when the line is in or near the view, so the cost
    follows what the user sees, not the size of the file.
    """

    def __init__(self, document: QTextDocument, style: str = "default") -> None:
        super().__init__(document)
        self._document = document
        self._lexer: Lexer = lexer_by_alias("text")
        self._style_name = style
        self._format_cache: dict[_TokenType, QTextCharFormat | None] = {}
        self._formats: dict[int, list[Format]] = {}
        self._pass: Iterator[tuple[int, _TokenType, str]] | None = None
        self._pass_block = 0
        self._pass_col = 0
        self._pending: dict[int, list[Format]] = {}
        self._block_count = document.blockCount()
        self._visible_range: tuple[int, int] = (0, 150)  # until the window says: a tall one shows ~100 lines
        self._slice_timer = QTimer(self)
        self._slice_timer.setInterval(0)
        self._slice_timer.timeout.connect(self._run_slice)
        self._relex_timer = QTimer(self)
        self._relex_timer.setSingleShot(True)
        self._relex_timer.setInterval(RELEX_DELAY_MS)
        self._relex_timer.timeout.connect(self.restart)
        self._window_timer = QTimer(self)
        self._window_timer.setSingleShot(True)
        self._window_timer.setInterval(WINDOW_DELAY_MS)
        self._window_timer.timeout.connect(self._highlight_window)
        document.contentsChange.connect(self._on_contents_change)
        #: Longest single slice, for tests and the benchmark.
        self.longest_slice_ms = 0.0
        #: >0 while formats are being applied, so listeners of the document's change signals
        #: can tell colours arriving from an edit.
        self._applying = 0

    # ---------------------------------------------------------------- public
    @property
    def applying_formats(self) -> bool:
        """True inside a format-only update: listeners of contentsChanged must not take it for an edit."""
        return self._applying > 0

    def document(self) -> QTextDocument:
        return self._document

    @property
    def lexer(self) -> Lexer:
        return self._lexer

    @property
    def mode(self) -> HighlightMode:
        """WINDOW beyond ``FULL_LEX_CHARS``: lexing 20 MB of Python takes Pygments about a minute."""
        return HighlightMode.WINDOW if self._document.characterCount() > FULL_LEX_CHARS else HighlightMode.WHOLE

    @property
    def busy(self) -> bool:
        """Colours are not yet up to date with the text (a pass, or one about to start)."""
        return self._pass is not None or self._relex_timer.isActive() or self._window_timer.isActive()

    def set_lexer(self, lexer: Lexer) -> None:
        self._lexer = lexer
        self.restart()

    def set_style(self, style: str) -> None:
        self._style_name = style
        self._format_cache.clear()
        self.restart()

    def forget(self) -> None:
        """Drop every format before the whole text is replaced (opening a file)."""
        self._relex_timer.stop()
        self._slice_timer.stop()
        self._window_timer.stop()
        self._pass = None
        self._formats = {}
        self._pending = {}

    def set_visible_range(self, first: int, last: int) -> None:
        """The view shows blocks ``first``..``last``: colour them (and a margin) if they are not yet."""
        if (first, last) == self._visible_range:
            return
        self._visible_range = (first, last)
        if self.mode is HighlightMode.WINDOW:
            self._window_timer.start()  # coalesces the steps of a scroll
        else:
            self._apply_lines(*self._lines_in_view())

    def restart(self) -> None:
        """Colour the lines in view now, then (small documents) lex the whole text in slices."""
        self._relex_timer.stop()
        self._slice_timer.stop()
        self._pass = None
        self._pending = {}
        if self.mode is HighlightMode.WINDOW:
            self._window_timer.stop()
            self._highlight_window()
            return
        text = self._document.toPlainText()
        self._highlight_visible_now(text)
        self._pass = self._lexer.get_tokens_unprocessed(text)
        self._pass_block, self._pass_col = 0, 0
        self._slice_timer.start()

    # --------------------------------------------------------------- passes
    def _lines_in_view(self) -> tuple[int, int]:
        first, last = self._visible_range
        return max(0, first - VIEW_MARGIN_LINES), min(self._document.blockCount() - 1, last + VIEW_MARGIN_LINES)

    def _highlight_visible_now(self, text: str) -> None:
        """Lex the lines in view on their own so they have colour before the full pass gets there."""
        first, last = self._lines_in_view()
        start_block = self._document.findBlockByNumber(first)
        end_block = self._document.findBlockByNumber(last)
        if not start_block.isValid():
            return
        start = start_block.position()
        end = end_block.position() + end_block.length() - 1 if end_block.isValid() else len(text)
        self._formats.update(self._lex_to_blocks(text[start:end], first))
        self._apply_lines(first, last)

    def _highlight_window(self) -> None:
        """Big documents: lex only the lines around the view, from a line that starts a statement.

        A line that begins at column 0 with something other than a space is, in most
        languages, outside any string or comment, so lexing from there gives the right
        colours; inside a long block string the colours can be wrong until it closes.
        """
        document = self._document
        first, last = self._lines_in_view()
        block = document.findBlockByNumber(first)
        if not block.isValid():
            return
        for _ in range(WINDOW_LOOKBACK_LINES):
            line = block.text()
            previous = block.previous()
            if (line and not line[0].isspace()) or not previous.isValid():
                break
            block = previous
        start = block.blockNumber()
        lines: list[str] = []
        while block.isValid() and start + len(lines) <= last:
            lines.append(block.text())
            block = block.next()
        started = time.perf_counter()
        self._formats = self._lex_to_blocks("\n".join(lines), start)
        self._apply_lines(first, last)
        self.longest_slice_ms = max(self.longest_slice_ms, (time.perf_counter() - started) * 1000)

    def _lex_to_blocks(self, text: str, first_block: int) -> dict[int, list[Format]]:
        result: dict[int, list[Format]] = {}
        block, col = first_block, 0
        for _index, token_type, value in self._lexer.get_tokens_unprocessed(text):
            block, col = self._place(result, block, col, token_type, value)
        return result

    def _place(
        self, into: dict[int, list[Format]], block: int, col: int, token_type: _TokenType, value: str
    ) -> tuple[int, int]:
        fmt = self._format_for(token_type)
        for i, part in enumerate(value.split("\n")):
            if i:
                block, col = block + 1, 0
            if part and fmt is not None:
                into.setdefault(block, []).append((col, len(part), fmt))
            col += len(part)
        return block, col

    def _run_slice(self) -> None:
        if self._pass is None:
            self._slice_timer.stop()
            return
        started = time.perf_counter()
        deadline = started + SLICE_MS / 1000
        done = False
        while time.perf_counter() < deadline:
            try:
                _index, token_type, value = next(self._pass)
            except StopIteration:
                done = True
                break
            before = self._pass_block
            self._pass_block, self._pass_col = self._place(
                self._pending, self._pass_block, self._pass_col, token_type, value
            )
            for finished in range(before, self._pass_block):
                self._commit_block(finished)
        if done:
            self._commit_block(self._pass_block)
            self._pass = None
            self._slice_timer.stop()
        self.longest_slice_ms = max(self.longest_slice_ms, (time.perf_counter() - started) * 1000)

    def _commit_block(self, number: int) -> None:
        formats = self._pending.pop(number, [])
        self._formats[number] = formats
        first, last = self._lines_in_view()
        if first <= number <= last:
            self._apply_lines(number, number)

    # ------------------------------------------------------ onto the layouts
    def _apply_lines(self, first: int, last: int) -> None:
        """Give blocks ``first``..``last`` their stored colours, touching only those that differ."""
        self._applying += 1
        try:
            block = self._document.findBlockByNumber(first)
            number = first
            while block.isValid() and number <= last:
                self._apply(block, self._formats.get(number, []))
                block = block.next()
                number += 1
        finally:
            self._applying -= 1

    def _apply(self, block: QTextBlock, formats: list[Format]) -> None:
        """Replace the block's colours, keeping ranges marked as others' (the ghost text's).

        Positions in a layout count the pre-edit text (the ghost) too, so ranges after it
        move right by its length.
        """
        layout = block.layout()
        current = layout.formats()
        others = [r for r in current if r.format.hasProperty(_OTHERS)]
        length = block.length() - 1
        preedit_at, preedit_len = layout.preeditAreaPosition(), len(layout.preeditAreaText())
        wanted: list[Format] = []
        for start, size, fmt in formats:
            if start >= length:
                continue
            size = min(size, length - start)
            if preedit_len and start >= preedit_at:
                start += preedit_len
            elif preedit_len and start + size > preedit_at:
                size += preedit_len
            wanted.append((start, size, fmt))
        mine = [(r.start, r.length, r.format) for r in current if not r.format.hasProperty(_OTHERS)]
        if mine == wanted:
            return
        ranges: list[QTextLayout.FormatRange] = []
        for start, size, fmt in wanted:
            item = QTextLayout.FormatRange()
            item.start, item.length, item.format = start, size, fmt
            ranges.append(item)
        layout.setFormats(ranges + others)
        self._document.markContentsDirty(block.position(), block.length())

    def _on_contents_change(self, position: int, _removed: int, _added: int) -> None:
        """Keep formats aligned with their lines until the next pass refreshes them."""
        if self._applying:
            return  # our own formats, not an edit: relexing now would only loop
        document = self._document
        count = document.blockCount()
        delta = count - self._block_count
        self._block_count = count
        if delta and self._formats:
            changed = document.findBlock(position).blockNumber()
            shifted: dict[int, list[Format]] = {}
            for number, formats in self._formats.items():
                if number <= changed:
                    shifted[number] = formats
                elif number + delta > changed:
                    shifted[number + delta] = formats
            self._formats = shifted
        self._relex_timer.start()

    def _format_for(self, token_type: _TokenType) -> QTextCharFormat | None:
        if token_type in self._format_cache:
            return self._format_cache[token_type]
        style = get_style_by_name(self._style_name)
        spec = style.style_for_token(token_type)
        fmt: QTextCharFormat | None = None
        if spec["color"] or spec["bold"] or spec["italic"] or spec["underline"]:
            fmt = QTextCharFormat()
            if spec["color"]:
                fmt.setForeground(QColor(f"#{spec['color']}"))
            if spec["bold"]:
                fmt.setFontWeight(QFont.Weight.Bold)
            if spec["italic"]:
                fmt.setFontItalic(True)
            if spec["underline"]:
                fmt.setFontUnderline(True)
        self._format_cache[token_type] = fmt
        return fmt
