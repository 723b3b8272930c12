"""The QSettings adapter: a damaged settings file never stops the window from starting."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QSettings

from app.core.fim import Layout
from app.core.settings_schema import setting_names
from app.gui.settings import Settings, load_settings, save_settings
from tests.core.test_settings_schema import assert_within_ranges
from tests.gui.test_main_window import dispose


def ini(path: Path) -> QSettings:
    return QSettings(str(path), QSettings.Format.IniFormat)


def test_round_trip(tmp_path: Path) -> None:
    original = Settings(max_tokens=99, temperature=0.4, layout="psm", dark_theme=True, recent_files=["/a.py"],
                        last_model="/m/a, b.gguf")
    save_settings(original, ini(tmp_path / "s.ini"))
    assert load_settings(ini(tmp_path / "s.ini")) == original


def test_the_values_from_the_issue_fall_back_and_the_window_starts(qtbot, tmp_path: Path) -> None:
    from app.gui.main_window import MainWindow

    path = tmp_path / "s.ini"
    path.write_text("[General]\ndebounce_ms=99999999999\nfont_size=4294967297\nlayout=bogus\nmax_tokens=12\n")
    loaded = load_settings(ini(path))
    assert (loaded.debounce_ms, loaded.font_size, loaded.layout, loaded.max_tokens) == (250, 11, "spm", 12)
    window = MainWindow(loaded)  # raised OverflowError on every start before
    try:
        assert window.completion.session.settings.debounce_ms == 250
        assert window.build_request().layout is Layout.SPM  # every completion failed on Layout("bogus")
    finally:
        dispose(window)


INI_VALUES = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30),
    st.lists(st.text(alphabet="abc,/ =", max_size=8), max_size=3),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(setting_names()), INI_VALUES))
def test_random_values_in_an_ini_file_load_within_range(values: dict[str, object]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "starpad.ini"
        store = ini(path)
        for key, value in values.items():
            store.setValue(key, value)
        store.sync()
        assert_within_ranges(load_settings(ini(path)))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(setting_names()),
                       st.text(alphabet=st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]),
                               max_size=30)))
def test_random_text_written_by_hand_loads_within_range(lines: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "starpad.ini"
        path.write_text("[General]\n" + "".join(f"{k}={v}\n" for k, v in lines.items()), encoding="utf-8")
        assert_within_ranges(load_settings(ini(path)))


@pytest.mark.parametrize("value", ["@Variant(\\0\\0\\0\\x7f\\0\\0\\0\\tQDateTime)", "@ByteArray(x)", "@Invalid()"])
def test_qt_special_values_load_as_defaults(tmp_path: Path, value: str) -> None:
    path = tmp_path / "s.ini"
    path.write_text(f"[General]\nfont_size={value}\nlayout={value}\nrecent_files={value}\n")
    loaded = load_settings(ini(path))
    assert (loaded.font_size, loaded.layout, loaded.recent_files) == (11, "spm", [])
