"""Which files of an open folder are shown, offered and allowed as context (app.core.workspace.ignore)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.core.workspace.ignore import Exclusion, WorkspaceRules, is_secret, list_files


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A git repository with root and nested .gitignore files, info/exclude, build outputs and secrets."""
    root = tmp_path / "proj"
    (root / ".git" / "info").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n", encoding="utf-8")
    (root / ".git" / "info" / "exclude").write_text("scratch.txt\nkeep_me.log\n", encoding="utf-8")
    _write(root, {
        ".gitignore": "*.log\n/out/\ndocs/_generated/\n",
        "main.py": "import lib\n",
        "lib/__init__.py": "",
        "lib/core.py": "x = 1\n",
        "lib/.gitignore": "local_*.py\n!local_keep.py\n",
        "lib/local_tmp.py": "",
        "lib/local_keep.py": "",
        "lib/sub/local_deep.py": "",  # a nested .gitignore applies to the folders below it too
        "keep_me.log": "",  # info/exclude says ignore, the root .gitignore says ignore: ignored
        "app.log": "",
        "scratch.txt": "",
        "out/result.txt": "",
        "src/out/generated.py": "",  # "/out/" is anchored to the root: this one is shown
        "docs/index.md": "",
        "docs/_generated/api.md": "",
        "node_modules/left-pad/index.js": "",
        "lib/__pycache__/core.cpython-311.pyc": "",
        "build/lib/main.py": "",
        "dist/proj-1.0.tar.gz": "",
        "proj.egg-info/PKG-INFO": "",
        ".venv/bin/python": "",
        ".mypy_cache/3.11/x.json": "",
        "target/debug/app": "",
        ".env": "TOKEN=secret\n",
        "config/.env.local": "",
        "certs/server.pem": "",
        "deploy/id_ed25519": "",
        "credentials.json": "{}",
        ".github/workflows/ci.yml": "",
        ".gitignore_global_example": "",
    })
    return root


def test_listing_hides_builtin_and_gitignored_and_keeps_everything_else(repo: Path) -> None:
    listing = list_files(repo)
    assert set(listing.paths) == {
        ".gitignore", "main.py", "lib/__init__.py", "lib/core.py", "lib/.gitignore", "lib/local_keep.py",
        "src/out/generated.py", "docs/index.md", ".env", "config/.env.local", "certs/server.pem",
        "deploy/id_ed25519", "credentials.json", ".github/workflows/ci.yml", ".gitignore_global_example",
    }
    assert not listing.truncated and not listing.cancelled
    # Breadth first: every top-level file comes before any file in a folder.
    depths = [p.count("/") for p in listing.paths]
    assert depths == sorted(depths)


def test_classify_says_why(repo: Path) -> None:
    rules = WorkspaceRules(repo)
    assert rules.in_git_repo and rules.pattern_root == repo.resolve()
    assert rules.classify("node_modules", is_dir=True) is Exclusion.BUILTIN
    assert rules.classify("node_modules/left-pad/index.js", is_dir=False) is Exclusion.INSIDE_HIDDEN
    assert rules.classify("app.log", is_dir=False) is Exclusion.GITIGNORE
    assert rules.classify("out", is_dir=True) is Exclusion.GITIGNORE
    assert rules.classify("src/out", is_dir=True) is Exclusion.NONE
    assert rules.classify("docs/_generated/api.md", is_dir=False) is Exclusion.INSIDE_HIDDEN
    assert rules.classify("lib/local_tmp.py", is_dir=False) is Exclusion.GITIGNORE
    assert rules.classify("lib/sub/local_deep.py", is_dir=False) is Exclusion.GITIGNORE
    assert rules.classify("lib/local_keep.py", is_dir=False) is Exclusion.NONE  # re-included by "!"
    assert rules.classify("local_tmp.py", is_dir=False) is Exclusion.NONE  # lib's .gitignore stops at lib
    assert rules.classify("scratch.txt", is_dir=False) is Exclusion.GITIGNORE  # .git/info/exclude
    assert rules.classify("proj.egg-info", is_dir=True) is Exclusion.BUILTIN
    assert rules.classify("lib/x.pyc", is_dir=False) is Exclusion.BUILTIN
    # "build" hides a folder, not a file of that name.
    assert rules.is_ignored("build", is_dir=True) and not rules.is_ignored("build", is_dir=False)
    assert not rules.is_ignored("", is_dir=True)  # the folder itself


def test_deeper_gitignore_overrides_the_root_one_and_nothing_returns_from_an_ignored_folder(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / ".git").mkdir(parents=True)
    _write(root, {
        ".gitignore": "*.txt\nvendor/\n",
        "pkg/.gitignore": "!notes.txt\n",
        "pkg/notes.txt": "",
        "pkg/other.txt": "",
        "vendor/.gitignore": "!*\n",  # inside an ignored folder: git never reads it
        "vendor/lib.py": "",
    })
    rules = WorkspaceRules(root)
    assert not rules.is_ignored("pkg/notes.txt")
    assert rules.is_ignored("pkg/other.txt")
    assert rules.is_ignored("vendor/lib.py")
    assert list_files(root).paths == [".gitignore", "pkg/.gitignore", "pkg/notes.txt"]


def test_a_subfolder_of_a_repository_uses_the_gitignore_files_above_it(repo: Path) -> None:
    rules = WorkspaceRules(repo / "lib")
    assert rules.pattern_root == repo.resolve()
    assert rules.is_ignored("debug.log")  # the root's "*.log"
    assert rules.is_ignored("local_tmp.py")
    assert not rules.is_ignored("core.py")
    assert set(list_files(repo / "lib", rules).paths) == {"__init__.py", "core.py", ".gitignore", "local_keep.py"}


def test_opening_an_ignored_folder_itself_shows_its_files(repo: Path) -> None:
    _write(repo, {"out/sub/data.txt": "", "out/trace.log": "", "out/.gitignore": "*.tmp\n", "out/x.tmp": ""})
    rules = WorkspaceRules(repo / "out")
    assert rules.pattern_root == (repo / "out").resolve()  # the repository's "/out/" would hide everything
    # Its own .gitignore still applies; the repository's "*.log" no longer does.
    assert set(list_files(repo / "out", rules).paths) == {".gitignore", "result.txt", "trace.log", "sub/data.txt"}


def test_gitignore_without_git_folder_is_still_honoured(tmp_path: Path) -> None:
    root = tmp_path / "unpacked"
    _write(root, {".gitignore": "secret_dump/\n*.tmp\n", "a.py": "", "b.tmp": "", "secret_dump/x.py": ""})
    rules = WorkspaceRules(root)
    assert not rules.in_git_repo
    assert list_files(root, rules).paths == [".gitignore", "a.py"]


def test_unreadable_or_odd_gitignore_hides_nothing_and_does_not_fail(tmp_path: Path) -> None:
    root = tmp_path / "odd"
    (root / ".git").mkdir(parents=True)
    (root / ".gitignore").write_bytes(b"\xff\xfe bad bytes\n*.gen\n\n# comment\n")
    (root / "sub" / ".gitignore").mkdir(parents=True)  # a folder named .gitignore
    _write(root, {"main.c": "", "main.gen": "", "sub/x.c": ""})
    assert list_files(root).paths == [".gitignore", "main.c", "sub/x.c"]


@pytest.mark.parametrize("name", [
    ".env", ".env.production", "config/.ENV.local", "server.pem", "tls/private.key", "id_rsa", "id_ed25519.pub",
    "home/.ssh/config", "credentials", "aws/credentials.json", ".netrc", ".pypirc", "cert.p12", "cert.PFX",
    "secrets.yaml", "k8s/secrets.json", ".git-credentials", r"deploy\id_ecdsa", "prod.env", "gcp-credentials.json",
    "keys/service-account.yaml",
])
def test_secret_names(name: str) -> None:
    assert is_secret(name)


@pytest.mark.parametrize("name", [
    "main.py", "environment.py", "envs/x.py", "id_map.py", "ids.py", "keyboard.py", "keys.py", "monkey.txt",
    "credential_helpers/README.md", "docs/secrets-management.md", "", "README.md",
])
def test_not_secret_names(name: str) -> None:
    assert not is_secret(name)


def test_context_excludes_secrets_and_ignored_files_but_the_tree_shows_secrets(repo: Path) -> None:
    rules = WorkspaceRules(repo)
    assert rules.allows_context("main.py")
    assert rules.allows_context("lib/core.py")
    assert not rules.allows_context(".env")
    assert not rules.is_ignored(".env")  # shown: the user may edit it
    assert not rules.allows_context("deploy/id_ed25519")
    assert not rules.allows_context("app.log")
    assert not rules.allows_context("node_modules/left-pad/index.js")
    assert not rules.allows_context("")
    assert rules.relative(repo / "lib" / "core.py") == "lib/core.py"
    assert rules.relative(repo.parent) is None


def test_listing_stops_at_the_limit_and_says_so(tmp_path: Path) -> None:
    root = tmp_path / "many"
    _write(root, {f"d{i}/f{j}.py": "" for i in range(5) for j in range(10)})
    listing = list_files(root, limit=25)
    assert len(listing.paths) == 25 and listing.truncated
    assert len(list_files(root).paths) == 50


def test_listing_can_be_cancelled(tmp_path: Path) -> None:
    root = tmp_path / "c"
    _write(root, {f"d{i}/f.py": "" for i in range(10)})
    calls = 0

    def cancelled() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    listing = list_files(root, cancelled=cancelled)
    assert listing.cancelled
    assert 0 < len(listing.paths) < 10


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_symlink_loops_and_links_out_of_the_folder_are_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "links"
    outside = tmp_path / "outside"
    _write(root, {"a/file.py": "", "b/real.py": ""})
    _write(outside, {"private.py": ""})
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)  # back to the top
    (root / "a" / "self").symlink_to(root / "a", target_is_directory=True)
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "private_link.py").symlink_to(outside / "private.py")
    (root / "alias").symlink_to(root / "b", target_is_directory=True)  # b's files are listed under b only
    (root / "dangling").symlink_to(tmp_path / "missing")
    (root / "inner_link.py").symlink_to(root / "a" / "file.py")  # a link to a file inside: listed
    assert sorted(list_files(root).paths) == ["a/file.py", "b/real.py", "inner_link.py"]
