"""Where a file's repository starts (the name and paths StarCoder2's layout sends)."""

from __future__ import annotations

from pathlib import Path

from app.core.repo import locate


def test_git_root_names_the_repository(tmp_path: Path) -> None:
    repo = tmp_path / "proj"
    (repo / "src" / "deep").mkdir(parents=True)
    (repo / ".git").write_text("gitdir: elsewhere\n", encoding="utf-8")  # a worktree's .git is a file
    source = repo / "src" / "deep" / "a.py"
    source.write_text("", encoding="utf-8")
    location = locate(source)
    assert (location.name, location.relative_path) == ("proj", "src/deep/a.py")
    assert location.relative(repo / "README.md") == "README.md"


def test_repo_location_without_git_is_the_files_folder(tmp_path: Path) -> None:
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "tool.py").write_text("", encoding="utf-8")
    location = locate(folder / "tool.py")
    assert (location.name, location.relative_path) == ("scripts", "tool.py")
    assert location.relative(tmp_path / "elsewhere.py") == "elsewhere.py"
