"""The settings declaration: every stored value, however damaged, loads into valid settings."""

from __future__ import annotations

import dataclasses
import logging
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.settings_schema import (
    Settings,
    float_range,
    int_range,
    problems,
    rule_for,
    setting_names,
    settings_from_values,
)

DEFAULTS = Settings()


def assert_within_ranges(s: Settings) -> None:
    """The ranges the issue asks for, written out here rather than read from the schema."""
    for name in ("max_tokens", "debounce_ms", "threads", "n_ctx", "indent_width", "font_size"):
        assert type(getattr(s, name)) is int, name
    assert 1 <= s.max_tokens <= 4096
    assert 0 <= s.debounce_ms <= 5000
    assert 0 <= s.threads <= 512
    assert 64 <= s.n_ctx <= 1 << 20
    assert 1 <= s.indent_width <= 16
    assert 6 <= s.font_size <= 72
    assert type(s.temperature) is float and math.isfinite(s.temperature) and 0.0 <= s.temperature <= 5.0
    assert type(s.top_p) is float and 0.0 < s.top_p <= 1.0
    assert s.layout in ("spm", "psm")
    for name in ("single_line", "auto_complete", "use_repo_context", "indent_with_spaces", "dark_theme",
                 "show_inspector"):
        assert type(getattr(s, name)) is bool, name
    assert isinstance(s.last_model, str) and isinstance(s.download_dir, str)
    assert isinstance(s.recent_files, list) and all(isinstance(f, str) for f in s.recent_files)


def test_the_defaults_are_valid() -> None:
    assert problems(Settings()) == []
    assert_within_ranges(Settings())


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("debounce_ms", 99_999_999_999),  # beyond Qt's 32-bit ints: every start aborted
        ("font_size", "99999999999"),
        ("layout", "bogus"),  # every completion failed with a traceback
        ("temperature", "nan"),
        ("temperature", float("inf")),
        ("temperature", -1.0),
        ("top_p", "0"),
        ("n_ctx", 16),
        ("n_ctx", 2**32),
        ("threads", 100_000),
        ("threads", -1),
        ("indent_width", 0),
        ("max_tokens", "many"),
        ("auto_complete", "maybe"),
        ("recent_files", 42),
        ("last_model", 3.5),
    ],
)
def test_a_bad_value_falls_back_to_its_default_with_a_note(
    caplog: pytest.LogCaptureFixture, name: str, stored: object
) -> None:
    other = "debounce_ms" if name == "max_tokens" else "max_tokens"
    with caplog.at_level(logging.WARNING, logger="starpad.settings"):
        loaded = settings_from_values({name: stored, other: "100"})
    assert getattr(loaded, name) == getattr(DEFAULTS, name)
    # The other field keeps the user's value: one bad key does not reset everything.
    assert getattr(loaded, other) == 100
    notes = [r for r in caplog.records if r.name == "starpad.settings"]
    assert len(notes) == 1 and name in notes[0].getMessage()


def test_stored_strings_are_read_as_their_types() -> None:
    loaded = settings_from_values({
        "max_tokens": " 128 ", "temperature": "0.7", "top_p": "1", "dark_theme": "true",
        "single_line": "0", "layout": "PSM", "recent_files": "/a.py", "n_ctx": "64", "threads": "512",
    })
    assert loaded.max_tokens == 128 and loaded.temperature == 0.7 and loaded.top_p == 1.0
    assert loaded.dark_theme is True and loaded.single_line is False
    assert loaded.layout == "psm" and loaded.recent_files == ["/a.py"]
    assert loaded.n_ctx == 64 and loaded.threads == 512


def test_unknown_keys_are_ignored() -> None:
    assert settings_from_values({"from_a_newer_version": "x"}) == Settings()


def test_problems_name_each_bad_field() -> None:
    bad = dataclasses.replace(Settings(), debounce_ms=-5, layout="bogus")
    found = problems(bad)
    assert len(found) == 2 and found[0].startswith("debounce_ms=") and found[1].startswith("layout=")


def test_ranges_for_widgets() -> None:
    assert int_range("font_size") == (6, 72)
    assert int_range("threads") == (0, 512)
    assert float_range("top_p") == (0.0, 1.0)
    with pytest.raises(TypeError):
        int_range("layout")
    with pytest.raises(KeyError):
        rule_for("nope")


STORED = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=40),
    st.sampled_from(["spm", "psm", "SPM", "true", "false", "yes", "0", "1", "", "nan", "-inf", "1e999"]),
    st.lists(st.text(max_size=10), max_size=3),
    st.lists(st.integers(), max_size=3),
)


@given(st.dictionaries(st.sampled_from(setting_names()), STORED))
def test_any_stored_values_load_into_settings_within_range(stored: dict[str, object]) -> None:
    loaded = settings_from_values(stored)
    assert_within_ranges(loaded)
    assert problems(loaded) == []
    for name, raw in stored.items():
        try:
            expected = rule_for(name).coerce(raw)
        except ValueError:
            expected = getattr(DEFAULTS, name)
        assert getattr(loaded, name) == expected
