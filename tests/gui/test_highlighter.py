"""Language detection: the fast file-name tables agree with Pygments' own lookup."""

from __future__ import annotations

import pytest
from pygments.lexers import get_lexer_for_filename

from app.gui.highlighter import detect_lexer

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
