"""Repository context in StarCoder2's layout: which files, in which order, never secrets,
chunks of big files, and a block that does not move while the user types."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.engine import Engine
from app.core.fim import Layout, PromptBudget, PromptBuilder
from app.core.repo_context import (
    CHUNK_LINES,
    ContextInputs,
    Relevance,
    RepoContext,
    SkipReason,
    chunk_ranges,
    looks_secret,
    repo_root,
    resolve_imports,
)
from app.core.session import CompletionSession, RequestKind, RequestSettings, SessionJob, SessionSettings
from app.core.session.requests import build_request, plan_context

# StarCoder2's ids: <fim_prefix>=1, <fim_middle>=2, <fim_suffix>=3, <repo_name>=5, <file_sep>=6.
PRE, MID, SUF, REP, SEP = 1, 2, 3, 5, 6

DEP = "def helper(x):\n    return x + 1\n"
UTIL = "from dep import helper\n\n\ndef twice(x):\n    return helper(helper(x))\n"
MAIN = "import util\nfrom dep import helper\n\nprint(util.twice(2), helper(3))\n"
CARET = MAIN.index("(2)")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """Three files that import each other, in a git folder called ``proj``."""
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    write(root / "dep.py", DEP)
    write(root / "util.py", UTIL)
    write(root / "main.py", MAIN)
    return root


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeRunner:
    def __init__(self) -> None:
        self.jobs: list[SessionJob] = []

    def submit(self, job: SessionJob) -> None:
        self.jobs.append(job)

    def cancel(self, request_id: int) -> None:
        pass


def repo_part(tokens: list[int]) -> list[int]:
    """The prompt up to (not including) the current file's FIM part."""
    return tokens[: tokens.index(PRE)]


# ------------------------------------------------------------------------ exact layout
@pytest.mark.parametrize("layout", [Layout.PSM, Layout.SPM])
def test_three_files_that_import_each_other_give_starcoder2s_exact_tokens(
    engine: Engine, project: Path, layout: Layout
) -> None:
    settings = RequestSettings(layout=layout, use_repo_context=True, n_ctx=engine.n_ctx)
    main = project / "main.py"
    block = plan_context(ContextInputs(main, project, {main: MAIN}, current_text=MAIN), settings,
                         lambda text: len(engine.tokenize(text)))
    assert [(e.path, e.relevance, e.whole) for e in block.entries] == [
        ("dep.py", Relevance.IMPORT, True), ("util.py", Relevance.IMPORT, True)]
    request = build_request(MAIN, CARET, settings, path=main, context=block)
    prompt = engine.build_prompt(request)
    prefix, suffix = MAIN[:CARET], MAIN[CARET:]
    context = [REP, *engine.tokenize("proj"),
               SEP, *engine.tokenize("dep.py\n" + DEP),
               SEP, *engine.tokenize("util.py\n" + UTIL),
               SEP]
    if layout is Layout.PSM:
        fim = [PRE, *engine.tokenize("main.py\n" + prefix), SUF, *engine.tokenize(suffix), MID]
    else:
        fim = [PRE, SUF, *engine.tokenize(suffix), MID, *engine.tokenize("main.py\n" + prefix)]
    assert prompt.tokens == context + fim
    assert prompt.repo_files_used == ("dep.py", "util.py")


def test_the_session_uses_the_open_tabs_unsaved_text_and_the_workspace_name(engine: Engine, project: Path) -> None:
    session = CompletionSession(FakeRunner(), settings=SessionSettings(
        request=RequestSettings(use_repo_context=True, n_ctx=engine.n_ctx)), clock=FakeClock())
    session.set_workspace(project)
    edited_util = UTIL + "\n\ndef thrice(x):\n    return helper(twice(x))\n"  # unsaved in its tab
    session.open_document("util", edited_util, 0, project / "util.py")
    session.open_document("main", MAIN, CARET, project / "main.py")
    prompt = engine.build_prompt(session.build_request())
    assert repo_part(prompt.tokens) == [
        REP, *engine.tokenize("proj"),
        SEP, *engine.tokenize("dep.py\n" + DEP),
        SEP, *engine.tokenize("util.py\n" + edited_util),
        SEP,
    ]
    assert session.build_request().path == "main.py"


def test_repo_root_and_name(tmp_path: Path) -> None:
    repo = tmp_path / "big"
    (repo / ".git").mkdir(parents=True)
    sub = write(repo / "pkg" / "sub" / "a.py", "")
    # The open folder inside a git repository: the git root names it.
    assert repo_root(sub, repo / "pkg") == repo
    # No folder open: the file's git root; without git, its folder.
    assert repo_root(sub, None) == repo
    loose = write(tmp_path / "loose" / "b.py", "")
    assert repo_root(loose, None) == tmp_path / "loose"
    # An open folder without git names itself; a file outside it has its own root.
    plain = tmp_path / "plain"
    inner = write(plain / "x" / "c.py", "")
    assert repo_root(inner, plain) == plain
    assert repo_root(loose, plain) == tmp_path / "loose"


# --------------------------------------------------------------------------- resolvers
def test_python_imports_absolute_relative_and_packages(tmp_path: Path) -> None:
    root = tmp_path / "r"
    init = write(root / "pkg" / "__init__.py", "")
    models = write(root / "pkg" / "models.py", "")
    sub_init = write(root / "pkg" / "sub" / "__init__.py", "")
    deep = write(root / "pkg" / "sub" / "deep.py", "")
    tools = write(root / "pkg" / "sub" / "tools.py", "")
    sibling = write(root / "pkg" / "sibling.py", "")
    top = write(root / "top.py", "")
    src_mod = write(root / "src" / "lib_mod.py", "")
    current = root / "pkg" / "sub" / "current.py"
    text = (
        "import os, sys\n"
        "import pkg.models as m, top\n"
        "from . import deep\n"
        "from .tools import run\n"
        "from .. import sibling\n"
        "from ..models import Model\n"
        "from pkg.sub import (\n    deep,\n    tools,\n)\n"
        "if True:\n    import lib_mod\n"
        "import numpy\n"
    )
    write(current, text)
    assert resolve_imports(current, text, root) == (models, top, deep, tools, sibling, src_mod)
    # ``from pkg import name`` where name is no module: the package's __init__.py defines it.
    assert resolve_imports(current, "from pkg import something\n", root) == (init,)
    assert resolve_imports(current, "import pkg.sub\n", root) == (sub_init,)
    # Never the file itself, never outside the root.
    assert resolve_imports(current, "from . import current\n", root) == ()
    write(tmp_path / "outside.py", "")
    assert resolve_imports(top, "from .. import outside\n", root) == ()


def test_js_and_ts_imports_with_extension_and_index_resolution(tmp_path: Path) -> None:
    root = tmp_path / "web"
    a = write(root / "src" / "a.ts", "")
    b = write(root / "src" / "b.js", "")
    index = write(root / "src" / "components" / "index.tsx", "")
    d = write(root / "src" / "d.ts", "")
    e = write(root / "lib" / "e.mjs", "")
    styles = write(root / "src" / "styles.css", "")
    current = root / "src" / "main.ts"
    text = (
        "import React from 'react';\n"
        "import { a } from './a';\n"
        "const b = require(\"./b\");\n"
        "import Button from './components';\n"
        "export { d } from './d.js';\n"
        "const e = await import('../lib/e.mjs');\n"
        "import './styles.css';\n"
        "import { gone } from './gone';\n"
    )
    write(current, text)
    assert resolve_imports(current, text, root) == (a, b, index, d, e, styles)


def test_c_includes_beside_the_file_and_in_the_roots_include_folders(tmp_path: Path) -> None:
    root = tmp_path / "c"
    local = write(root / "src" / "net" / "socket.h", "")
    shared = write(root / "src" / "util.h", "")
    public = write(root / "include" / "proj" / "api.h", "")
    current = root / "src" / "net" / "socket.c"
    text = (
        '#include <stdio.h>\n'
        '#include "socket.h"\n'
        '#  include "util.h"\n'
        '#include <proj/api.h>\n'
        '#include "missing.h"\n'
    )
    write(current, text)
    assert resolve_imports(current, text, root) == (local, shared, public)


def test_other_languages_have_no_imports(tmp_path: Path) -> None:
    notes = write(tmp_path / "notes.md", "import x\n")
    write(tmp_path / "x.py", "")
    assert resolve_imports(notes, "import x\n", tmp_path) == ()


# ---------------------------------------------------------------------------- secrets
@pytest.mark.parametrize("name", [".env", ".env.local", "server.pem", "tls.key", "id_rsa", "id_ed25519.pub",
                                  "credentials", "credentials.json", ".netrc", ".pypirc",
                                  ".ssh/config", ".aws/config"])
def test_secret_looking_files(name: str) -> None:
    assert looks_secret(Path("/home/u/proj") / name)


@pytest.mark.parametrize("name", ["main.py", "environment.py", "keys.py", "README.md", "monkey.c", "id_map.py"])
def test_ordinary_files_are_not_secrets(name: str) -> None:
    assert not looks_secret(Path("/home/u/proj") / name)


def test_secrets_and_ignored_files_never_reach_the_prompt(engine: Engine, project: Path) -> None:
    write(project / ".gitignore", "generated/\n*.log\n!keep.log\n")
    write(project / "sub" / ".gitignore", "local_*.py\n")
    env = write(project / ".env", "API_KEY=sk-live-0123456789\n")
    pem = write(project / "server.pem", "-----BEGIN PRIVATE KEY-----\nMIIEv\n")
    gen = write(project / "generated" / "schema.py", "SCHEMA = 'generated'\n")
    log_file = write(project / "debug.log", "debug output line\n")
    kept_log = write(project / "keep.log", "kept log line\n")
    local = write(project / "sub" / "local_settings.py", "PASSWORD = 'hunter2'\n")
    main_text = MAIN + "from generated import schema\nfrom sub import local_settings\n"
    main = write(project / "main.py", main_text)
    open_texts = {main: main_text, env: env.read_text(), pem: pem.read_text()}
    inputs = ContextInputs(main, project, open_texts, recent=(log_file, kept_log, local, gen),
                           current_text=main_text)
    settings = RequestSettings(use_repo_context=True, n_ctx=engine.n_ctx)
    block = plan_context(inputs, settings)
    paths = [e.path for e in block.entries]
    assert paths == ["keep.log", "dep.py", "util.py"]
    assert dict(block.skipped) == {
        "generated/schema.py": SkipReason.IGNORED, "sub/local_settings.py": SkipReason.IGNORED,
        ".env": SkipReason.SECRET, "server.pem": SkipReason.SECRET, "debug.log": SkipReason.IGNORED,
    }
    prompt = engine.build_prompt(build_request(main_text, 0, settings, path=main, context=block))
    text = "".join(engine.token_text(t) for t in prompt.tokens)
    for secret in ("sk-live", "PRIVATE KEY", "hunter2", "generated'", "debug output"):
        assert secret not in text
    assert "kept log line" in text


def test_a_remote_engine_gets_nothing_from_outside_the_workspace(project: Path, tmp_path: Path) -> None:
    elsewhere = write(tmp_path / "notes" / "todo.py", "TODO = 1\n")
    main = project / "main.py"
    inputs = ContextInputs(main, project, {main: MAIN, elsewhere: "TODO = 1\n"}, current_text=MAIN)
    local = RepoContext().build(inputs, 4000)
    assert "todo.py" in [e.path for e in local.entries]  # a local model may see any open tab
    remote = RepoContext().build(ContextInputs(main, project, {main: MAIN, elsewhere: "TODO = 1\n"},
                                               remote=True, current_text=MAIN), 4000)
    assert [e.path for e in remote.entries] == ["dep.py", "util.py"]
    assert ("todo.py", SkipReason.OUTSIDE) in remote.skipped
    # Without an open folder there is no workspace: a remote engine gets no other file at all.
    alone = RepoContext().build(ContextInputs(main, None, {main: MAIN}, remote=True, current_text=MAIN), 4000)
    assert alone.entries == ()


# ----------------------------------------------------------------------------- chunks
def test_chunk_ranges_are_aligned_and_do_not_overlap() -> None:
    assert chunk_ranges(1000, [500]) == [(448, 512)]
    assert chunk_ranges(1000, [510, 500, 100, 900, 40, 700]) == [(448, 512), (64, 128), (864, 928), (0, 64)]
    assert chunk_ranges(1000, []) == [(0, CHUNK_LINES)]  # no place known: the top (imports, definitions)
    assert chunk_ranges(40, [39]) == [(0, 40)]
    assert chunk_ranges(0, [10]) == [(0, 0)]


def test_a_big_file_contributes_64_line_chunks_around_its_recent_places(engine: Engine, project: Path) -> None:
    lines = [f"v{i} = {i}\n" for i in range(2000)]
    big_text = "".join(lines)
    big = write(project / "big.py", big_text)
    main = project / "main.py"
    main_text = "import big\n" + MAIN
    inputs = ContextInputs(main, project, {main: main_text}, regions={big: [1200, 10]}, current_text=main_text)
    count = lambda text: len(engine.tokenize(text))  # noqa: E731
    block = RepoContext(count).build(inputs, 2000)
    chunks = [e for e in block.entries if e.path == "big.py"]
    assert [c.lines for c in chunks] == [(1, 64), (1153, 1216)]
    assert [c.text for c in chunks] == ["".join(lines[0:64]), "".join(lines[1152:1216])]
    assert not any(c.whole for c in chunks)
    assert sum(e.tokens for e in block.entries) + 1 + count("proj") <= 2000
    # In the prompt, each chunk is a part of its own: <file_sep>big.py\n + its lines.
    settings = RequestSettings(use_repo_context=True, n_ctx=engine.n_ctx)
    prompt = engine.build_prompt(build_request(main_text, 0, settings, path=main, context=block))
    head = repo_part(prompt.tokens)
    for chunk in chunks:
        part = [SEP, *engine.tokenize("big.py\n" + chunk.text)]
        assert any(head[i:i + len(part)] == part for i in range(len(head)))


def test_when_the_engine_has_less_room_the_far_parts_go_first(engine: Engine, project: Path) -> None:
    write(project / "notes.py", "NOTES = 'recent'\n" * 40)
    main = project / "main.py"
    block = RepoContext().build(ContextInputs(main, project, {main: MAIN}, recent=(project / "notes.py",),
                                              current_text=MAIN), 5000)
    assert [e.path for e in block.entries] == ["notes.py", "dep.py", "util.py"]  # far (recent) first
    request = build_request(MAIN, CARET, RequestSettings(use_repo_context=True), path=main, context=block)
    builder = PromptBuilder(engine.tokenize, engine.fim_tokens)
    roomy = builder.build(request.prefix, request.suffix, PromptBudget(4096, 64), path="main.py",
                          repo_name="proj", repo_files=request.repo_files)
    assert roomy.repo_file_indices == (0, 1, 2)
    tight = builder.build(request.prefix, request.suffix, PromptBudget(300, 64), path="main.py",
                          repo_name="proj", repo_files=request.repo_files)
    assert tight.repo_files_used == ("dep.py", "util.py") and tight.repo_file_indices == (1, 2)
    assert len(repo_part(tight.tokens)) <= int((PromptBudget(300, 64).prompt_tokens - 3) * 0.5)


# ------------------------------------------------------------------------- stability
def make_session(engine: Engine, project: Path) -> tuple[CompletionSession, FakeRunner, FakeClock]:
    runner, clock = FakeRunner(), FakeClock()
    settings = SessionSettings(request=RequestSettings(use_repo_context=True, n_ctx=engine.n_ctx))
    session = CompletionSession(runner, settings=settings, clock=clock,
                                count_tokens=lambda text: len(engine.tokenize(text)))
    session.set_workspace(project)
    session.set_model_ready(True)
    return session, runner, clock


def test_typing_and_moving_the_caret_leave_the_context_tokens_unchanged(engine: Engine, project: Path) -> None:
    session, _, clock = make_session(engine, project)
    session.open_document("util", UTIL, 0, project / "util.py")
    session.open_document("main", MAIN, CARET, project / "main.py")
    before = repo_part(engine.build_prompt(session.build_request()).tokens)
    assert before[:1] == [REP] and len(before) > 20
    text, caret = MAIN, CARET
    for ch in "x = helper(":
        text, caret = text[:caret] + ch + text[caret:], caret + 1
        session.text_edited(text, caret)
        clock.now += 0.1
        session.tick()
        assert repo_part(engine.build_prompt(session.build_request()).tokens) == before
    session.caret_moved(0)
    session.caret_moved(len(text))
    # Even an edit in the other tab waits for the next rebuild (not a keystroke's business).
    session.text_edited(UTIL + "# more\n", 0, "util")
    assert repo_part(engine.build_prompt(session.build_request()).tokens) == before


def test_the_block_changes_with_the_set_of_files_and_is_prefilled(engine: Engine, project: Path) -> None:
    session, runner, clock = make_session(engine, project)
    write(project / "extra.py", "EXTRA = 42\n")
    session.open_document("main", MAIN, CARET, project / "main.py")
    first = session.context_block
    assert first is not None and [e.path for e in first.entries] == ["dep.py", "util.py"]
    clock.now += 2
    session.tick()
    prefills = [job for job in runner.jobs if job.kind is RequestKind.PREFILL]
    assert len(prefills) == 1 and [f.path for f in prefills[0].request.repo_files] == ["dep.py", "util.py"]

    # A new import: noticed in idle time, never per keystroke; the new block is prefilled.
    text = "import extra\n" + MAIN
    session.text_edited(text, len("import extra\n"))
    assert session.context_block is first
    clock.now += 2
    session.tick()
    prefills = [job for job in runner.jobs if job.kind is RequestKind.PREFILL]
    assert [f.path for f in prefills[-1].request.repo_files] == ["dep.py", "extra.py", "util.py"]
    second = session.context_block
    assert second is not None and second is not first

    # Nothing changed: idle time finds the same imports and keeps the block.
    clock.now += 2
    session.tick()
    assert session.context_block is second

    # A tab opened and closed: its unsaved text is taken when the block is rebuilt.
    session.open_document("notes", "NOTES = 1\n", 0, project / "notes.py")
    session.text_edited("NOTES = 2\n", 0, "notes")
    session.switch_to("main")
    block = session.context_block
    assert block is not None and ("notes.py", "NOTES = 2\n") in [(e.path, e.text) for e in block.entries]
    session.close_document("notes")
    after_close = session.context_block
    assert after_close is not None and after_close is not block
    # Closed after an edit: a recently edited file now, read from disk (where it does not exist).
    assert "notes.py" not in [e.path for e in after_close.entries]

    # Saved elsewhere: rebuilt from disk.
    write(project / "dep.py", DEP + "\n\ndef more():\n    pass\n")
    session.files_changed()
    block = session.context_block
    assert block is not None and (DEP + "\n\ndef more():\n    pass\n") in [e.text for e in block.entries]


def test_switching_back_to_a_tab_gives_the_same_block(engine: Engine, project: Path) -> None:
    session, _, _ = make_session(engine, project)
    session.open_document("util", UTIL, 0, project / "util.py")
    session.open_document("main", MAIN, CARET, project / "main.py")
    first = session.context_block
    session.switch_to("util")
    util_block = session.context_block
    assert util_block is not None and [e.path for e in util_block.entries] == ["main.py", "dep.py"]
    session.switch_to("main")
    again = session.context_block
    assert again is not None and first is not None and again.key == first.key


def test_repository_context_off_sends_no_block(engine: Engine, project: Path) -> None:
    session = CompletionSession(FakeRunner(), clock=FakeClock())
    session.open_document("main", MAIN, CARET, project / "main.py")
    request = session.build_request()
    assert session.context_block is None and request.repo_files == () and request.repo_name is None
    assert request.path == "main.py"


def test_a_context_file_switched_off_stays_out_until_switched_on(engine: Engine, project: Path) -> None:
    session, runner, clock = make_session(engine, project)
    session.open_document("main", MAIN, CARET, project / "main.py")
    session.set_context_disabled(["util.py"])
    block = session.context_block
    assert block is not None and [e.path for e in block.entries] == ["dep.py"]
    assert ("util.py", SkipReason.SWITCHED_OFF) in block.skipped
    clock.now += 2
    session.tick()  # the changed block is prefilled in idle time
    assert [f.path for f in runner.jobs[-1].request.repo_files] == ["dep.py"]
    session.set_context_disabled([])
    block = session.context_block
    assert block is not None and [e.path for e in block.entries] == ["dep.py", "util.py"]


def test_the_share_setting_limits_the_block(project: Path) -> None:
    write(project / "notes.py", "NOTES = 'recent'\n" * 40)
    main = project / "main.py"
    inputs = ContextInputs(main, project, {main: MAIN}, recent=(project / "notes.py",), current_text=MAIN)
    wide = plan_context(inputs, RequestSettings(n_ctx=2048, repo_share=0.5))
    narrow = plan_context(inputs, RequestSettings(n_ctx=2048, repo_share=0.05))
    assert [e.path for e in wide.entries] == ["notes.py", "dep.py", "util.py"]
    assert [e.path for e in narrow.entries] == ["dep.py", "util.py"]  # the most relevant keep their place
    assert sum(e.tokens for e in narrow.entries) <= RequestSettings(n_ctx=2048, repo_share=0.05).repo_budget


def test_the_session_chunks_a_big_tab_around_where_the_user_was(engine: Engine, project: Path) -> None:
    lines = [f"v{i} = {i}\n" for i in range(3000)]
    big_text = "".join(lines)
    write(project / "big.py", big_text)
    runner, clock = FakeRunner(), FakeClock()
    settings = SessionSettings(request=RequestSettings(use_repo_context=True, n_ctx=2048))
    session = CompletionSession(runner, settings=settings, clock=clock)
    session.set_workspace(project)
    edited = big_text.replace("v1500 = 1500\n", "v1500 = 'edited'\n")  # unsaved, at line 1501
    session.open_document("big", edited, edited.index("v1500"), project / "big.py")
    session.open_document("main", MAIN, CARET, project / "main.py")
    block = session.context_block
    assert block is not None
    chunks = [e for e in block.entries if e.path == "big.py"]
    assert [c.lines for c in chunks] == [(1441, 1504)]  # 60 lines above the place, 3 below
    assert "v1500 = 'edited'\n" in chunks[0].text and chunks[0].text.count("\n") == CHUNK_LINES
