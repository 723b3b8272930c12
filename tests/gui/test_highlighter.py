"""Language detection agrees with Pygments; colours go onto the lines in view, whole or windowed."""

from __future__ import annotations

import pytest
from pygments.lexers import get_lexer_for_filename
from PySide6.QtGui import QTextCursor, QTextFormat

from app.core.ghost import Ghost
from app.gui.editor import CodeEditor
from app.gui.highlighter import FULL_LEX_CHARS, HighlightMode, PygmentsHighlighter, detect_lexer, lexer_by_alias

NAMES = [
    "a.py", "a.pyi", "a.rs", "a.c", "a.h", "a.cpp", "a.hpp", "a.js", "a.ts", "a.tsx", "a.go", "a.java", "a.kt",
    "a.rb", "a.php", "a.pl", "a.sh", "a.lua", "a.R", "a.jl", "a.hs", "a.ml", "a.ex", "a.swift", "a.m", "a.cs",
    "a.sql", "a.html", "a.css", "a.xml", "a.json", "a.yaml", "a.toml", "a.ini", "a.md", "a.rst", "a.tex", "a.txt",
    "Makefile", "CMakeLists.txt", "Dockerfile", "a.cmake", "a.zig", "a.asm", "a.f90", "a.ps1", "a.vue", "a.proto",
    "a.tf", "a.nix", "SConstruct", ".bashrc", "a.cu", "meson.build", "BUILD.bazel", "a.diff",
]


@pytest.mark.parametrize("name", NAMES)
def test_fast_lookup_matches_pygments(name: str) -> None:
    sample = "x = 1\n"
    assert detect_lexer(name, sample).name == get_lexer_for_filename(name, sample).name


def test_unknown_names_fall_back_to_content_then_plain_text() -> None:
    assert detect_lexer("notes.unknownext", "").name == "Text only"
    assert detect_lexer(None, "#!/usr/bin/env python\nimport os\n").name == "Python"


# ------------------------------------------------------------- colours on the layouts
def _code(n_lines: int) -> str:
    """Python whose line ``i`` is known: ``def f<i>(x):`` on even lines, a return on odd ones."""
    return "".join(f"def f{i}(x):\n" if i % 2 == 0 else f"    return x + {i}  # c\n" for i in range(n_lines))


def _ranges(editor: CodeEditor, line: int) -> list[tuple[int, int]]:
    layout = editor.document().findBlockByNumber(line).layout()
    return [(r.start, r.length) for r in layout.formats()]


def _highlighted(qtbot, text: str) -> tuple[CodeEditor, PygmentsHighlighter]:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.resize(600, 400)
    editor.show()
    highlighter = PygmentsHighlighter(editor.document())
    editor.setPlainText(text)
    highlighter.set_visible_range(*editor.visible_block_range())
    highlighter.set_lexer(lexer_by_alias("python"))
    qtbot.waitUntil(lambda: not highlighter.busy, timeout=30_000)
    return editor, highlighter


def test_small_documents_are_lexed_whole_and_coloured_where_visible(qtbot) -> None:
    editor, highlighter = _highlighted(qtbot, _code(4000))
    assert highlighter.mode is HighlightMode.WHOLE
    assert (0, 3) in _ranges(editor, 0)  # "def" on the first line
    assert _ranges(editor, 3000) == []  # far below the view: Qt was given nothing to keep
    highlighter.set_visible_range(2990, 3010)
    assert (0, 3) in _ranges(editor, 3000)
    assert _ranges(editor, 3000)[:2] == _ranges(editor, 0)[:2]  # "def", then the function name


def test_big_documents_are_lexed_around_the_view_only(qtbot) -> None:
    lines = FULL_LEX_CHARS // 20
    editor, highlighter = _highlighted(qtbot, _code(lines))
    assert editor.document().characterCount() > FULL_LEX_CHARS
    assert highlighter.mode is HighlightMode.WINDOW
    assert (0, 3) in _ranges(editor, 0)
    middle = lines // 2
    assert _ranges(editor, middle) == []
    highlighter.set_visible_range(middle, middle + 30)
    qtbot.waitUntil(lambda: not highlighter.busy, timeout=10_000)
    assert (0, 3) in _ranges(editor, middle)  # "def" again, coloured like the first line
    assert _ranges(editor, middle + 1)[:1] == _ranges(editor, 1)[:1]  # the "return" keyword
    # An edit recolours the window, quickly, and only it.
    cursor = editor.textCursor()
    cursor.setPosition(editor.document().findBlockByNumber(middle).position())
    cursor.insertText("class C: pass\n")
    qtbot.waitUntil(lambda: not highlighter.busy, timeout=10_000)
    assert (0, 5) in _ranges(editor, middle)  # "class"
    assert highlighter.longest_slice_ms < 500  # a window, not 1 MB of Python (generous for CI)


def test_colours_are_not_edits_and_leave_the_ghost_alone(qtbot) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.show()
    highlighter = PygmentsHighlighter(editor.document())
    changes: list[int] = []
    editor.document().contentsChanged.connect(lambda: changes.append(1))
    editor.setPlainText("def f(x):\n    return x\n")
    changes.clear()
    editor.moveCursor(QTextCursor.MoveOperation.End)
    editor.show_ghost(Ghost(editor.textCursor().position(), "pass"))
    editor.moveCursor(QTextCursor.MoveOperation.Start)  # moving drops the ghost; show it on line 0 instead
    editor.show_ghost(Ghost(0, "import os\n"))
    assert editor.ghost is not None
    highlighter.set_lexer(lexer_by_alias("python"))
    qtbot.waitUntil(lambda: not highlighter.busy, timeout=10_000)
    formats = editor.document().firstBlock().layout().formats()
    ghost = [r for r in formats if r.format.hasProperty(QTextFormat.Property.UserProperty)]
    colours = [r for r in formats if not r.format.hasProperty(QTextFormat.Property.UserProperty)]
    assert len(ghost) == 1 and colours
    # Ranges after the ghost's pre-edit text move right by its length ("def" starts the line).
    assert min(r.start for r in colours) == len("import os\u2028")
    assert changes == [] and not editor.document().isModified() and not editor.document().isUndoAvailable()
    assert editor.ghost is not None
