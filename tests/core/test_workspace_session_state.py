"""The saved session file: round trip, damaged files, files gone since."""

from __future__ import annotations

import json
from pathlib import Path

from app.core.workspace.session_state import SavedSession, SavedTab, load_session, save_session


def test_a_session_round_trips_through_its_file(tmp_path: Path) -> None:
    session = SavedSession(
        (SavedTab(tmp_path / "a.py", 10, 0), SavedTab(tmp_path / "ü b.py", 3, 240)), current=1, folder=tmp_path
    )
    path = tmp_path / "data" / "session.json"
    save_session(path, session)
    assert load_session(path) == (session, [])
    assert list(path.parent.iterdir()) == [path]  # written atomically: no temp file left


def test_no_file_is_an_empty_session_without_a_note(tmp_path: Path) -> None:
    session, notes = load_session(tmp_path / "session.json")
    assert session == SavedSession() and session.empty and notes == []


def test_a_damaged_file_gives_an_empty_session_and_a_note(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    for data, reason in ((b"{not json", "not valid JSON"), (b"\xff\xfe", "not valid UTF-8"),
                         (b'{"format": 99}', "unknown session format"), (b'{"format": 1, "tabs": 3}', "not a list")):
        path.write_bytes(data)
        session, notes = load_session(path)
        assert session == SavedSession()
        assert len(notes) == 1 and reason in notes[0]


def test_bad_tab_entries_are_skipped_and_the_current_index_follows(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    path.write_text(json.dumps({
        "format": 1,
        "current": 2,
        "folder": 5,
        "tabs": [{"path": "/a.py", "caret": -4}, {"caret": 1}, {"path": "/c.py", "caret": 7, "scroll": "x"}],
    }))
    session, notes = load_session(path)
    assert notes == []
    assert session == SavedSession((SavedTab(Path("/a.py"), 0, 0), SavedTab(Path("/c.py"), 7, 0)), current=1)


def test_files_gone_since_are_left_out_and_named(tmp_path: Path) -> None:
    kept, gone = tmp_path / "kept.py", tmp_path / "gone.py"
    kept.write_text("x = 1\n")
    session = SavedSession((SavedTab(gone, 1), SavedTab(kept, 2)), current=1, folder=tmp_path / "no-such-folder")
    present, missing = session.without_missing()
    assert present == SavedSession((SavedTab(kept, 2),), current=0, folder=None)
    assert missing == [gone, tmp_path / "no-such-folder"]


def test_the_current_tab_gone_leaves_no_current_tab(tmp_path: Path) -> None:
    kept = tmp_path / "kept.py"
    kept.write_text("")
    session = SavedSession((SavedTab(kept), SavedTab(tmp_path / "gone.py")), current=1)
    assert session.without_missing()[0].current == -1
