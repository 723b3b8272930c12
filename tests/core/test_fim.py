"""Exact FIM token sequences and budget cuts, with llama.cpp's real tokenizer."""

from __future__ import annotations

from app.core.engine import Engine
from app.core.fim import Layout, PromptBudget, PromptBuilder, RepoFile, SegmentKind
from app.core.model_info import FimTokenIds

PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\nprint(add(1, 2))\n"
# StarCoder2's ids: <fim_prefix>=1, <fim_middle>=2, <fim_suffix>=3, <repo_name>=5, <file_sep>=6.
PRE, MID, SUF, REP, SEP = 1, 2, 3, 5, 6


def builder(engine: Engine) -> PromptBuilder:
    return PromptBuilder(engine.tokenize, engine.fim_tokens)


def test_fim_ids_come_from_the_vocab(engine: Engine) -> None:
    assert engine.fim_tokens == FimTokenIds(pre=1, suf=3, mid=2, pad=4, rep=5, sep=6)


def test_spm_sequence_is_exact(engine: Engine) -> None:
    prompt = builder(engine).build(PREFIX, SUFFIX, PromptBudget(4096, 64), Layout.SPM)
    assert prompt.tokens == [PRE, SUF, *engine.tokenize(SUFFIX), MID, *engine.tokenize(PREFIX)]


def test_psm_sequence_is_exact(engine: Engine) -> None:
    prompt = builder(engine).build(PREFIX, SUFFIX, PromptBudget(4096, 64), Layout.PSM)
    assert prompt.tokens == [PRE, *engine.tokenize(PREFIX), SUF, *engine.tokenize(SUFFIX), MID]


def test_user_text_cannot_inject_control_tokens(engine: Engine) -> None:
    tokens = engine.tokenize("x = '<fim_middle><|endoftext|>'")
    assert not set(tokens) & {0, 1, 2, 3, 4, 5, 6}


def test_repo_layout_matches_starcoder2_training(engine: Engine) -> None:
    files = [RepoFile("util.py", "def helper():\n    pass\n")]
    prompt = builder(engine).build(
        PREFIX, SUFFIX, PromptBudget(4096, 64), Layout.PSM, path="main.py", repo_name="demo", repo_files=files
    )
    expected = [
        REP, *engine.tokenize("demo"),
        SEP, *engine.tokenize("util.py\ndef helper():\n    pass\n"),
        SEP, PRE, *engine.tokenize("main.py\n" + PREFIX),
        SUF, *engine.tokenize(SUFFIX), MID,
    ]
    assert prompt.tokens == expected
    assert prompt.repo_files_used == ("util.py",)


def test_budget_cuts_prefix_start_and_suffix_end_at_lines(engine: Engine) -> None:
    prefix = "".join(f"line_{i} = {i}\n" for i in range(400))
    suffix = "".join(f"after_{i} = {i}\n" for i in range(400))
    budget = PromptBudget(n_ctx=600, max_new_tokens=64, prefix_step_lines=8)
    prompt = builder(engine).build(prefix, suffix, budget, Layout.SPM)
    assert len(prompt.tokens) <= budget.prompt_tokens
    assert prompt.prefix_chars_dropped > 0 and prompt.suffix_chars_dropped > 0
    kept_prefix = prefix[prompt.prefix_chars_dropped :]
    kept_suffix = suffix[: len(suffix) - prompt.suffix_chars_dropped]
    assert kept_prefix.startswith("line_") and prefix[prompt.prefix_chars_dropped - 1] == "\n"
    assert kept_suffix.startswith("after_0 = 0\n") and kept_suffix.endswith("\n")
    assert prompt.count(SegmentKind.SUFFIX) <= budget.prompt_tokens * 0.25 + 1
    # Roughly three quarters for the prefix, one quarter for the suffix.
    assert prompt.count(SegmentKind.PREFIX) > 2 * prompt.count(SegmentKind.SUFFIX)


def test_prefix_cut_moves_in_coarse_steps(engine: Engine) -> None:
    """Typing at the end must not move the prefix start every keystroke (cache reuse)."""
    base = "".join(f"value_{i} = compute({i})\n" for i in range(300))
    budget = PromptBudget(n_ctx=700, max_new_tokens=64, prefix_step_lines=16)
    b = builder(engine)
    starts = set()
    for typed in ["", "x", "x ", "x =", "x = 1", "x = 12", "x = 123"]:
        prompt = b.build(base + typed, "", budget, Layout.SPM)
        starts.add(prompt.prefix_chars_dropped)
    assert len(starts) == 1
    start = starts.pop()
    line_index = base[:start].count("\n")
    assert line_index % 16 == 0


def test_unused_suffix_share_goes_to_prefix(engine: Engine) -> None:
    prefix = "".join(f"line_{i} = {i}\n" for i in range(400))
    budget = PromptBudget(n_ctx=600, max_new_tokens=64, prefix_step_lines=1)
    prompt = builder(engine).build(prefix, "end\n", budget, Layout.SPM)
    assert prompt.count(SegmentKind.PREFIX) > 0.9 * (budget.prompt_tokens - 3 - prompt.count(SegmentKind.SUFFIX))


def test_prefix_only_when_vocab_lacks_fim() -> None:
    b = PromptBuilder(lambda text: [ord(c) for c in text], FimTokenIds())
    prompt = b.build("abc", "def", PromptBudget(100, 10), Layout.SPM)
    assert prompt.layout is Layout.PREFIX_ONLY
    assert prompt.tokens == [97, 98, 99]


def test_a_chunk_is_laid_out_like_a_file(engine: Engine) -> None:
    """A 64-line chunk of a big file is one more <file_sep>path\\ntext part; its lines are metadata."""
    chunk = "".join(f"v{i} = {i}\n" for i in range(100, 164))
    files = [RepoFile("big.py", chunk, (101, 164)), RepoFile("util.py", "def helper():\n    pass\n")]
    prompt = builder(engine).build(
        PREFIX, SUFFIX, PromptBudget(4096, 64), Layout.SPM, path="main.py", repo_name="demo", repo_files=files
    )
    assert prompt.tokens == [
        REP, *engine.tokenize("demo"),
        SEP, *engine.tokenize("big.py\n" + chunk),
        SEP, *engine.tokenize("util.py\ndef helper():\n    pass\n"),
        SEP, PRE, SUF, *engine.tokenize(SUFFIX), MID, *engine.tokenize("main.py\n" + PREFIX),
    ]
    assert prompt.repo_file_indices == (0, 1)


def test_repo_parts_that_do_not_fit_leave_from_the_front(engine: Engine) -> None:
    """Parts come far first, near last: a smaller context keeps the ones next to the code."""
    far = RepoFile("far.py", "".join(f"far_{i} = {i}\n" for i in range(80)))
    near = RepoFile("near.py", "near = 1\n")
    nearest = RepoFile("nearest.py", "nearest = 2\n")
    budget = PromptBudget(n_ctx=300, max_new_tokens=64)
    prompt = builder(engine).build(PREFIX, SUFFIX, budget, Layout.PSM, path="main.py", repo_name="demo",
                                   repo_files=[far, near, nearest])
    assert prompt.repo_files_used == ("near.py", "nearest.py") and prompt.repo_file_indices == (1, 2)
    repo = prompt.tokens[: prompt.tokens.index(PRE)]
    assert repo == [REP, *engine.tokenize("demo"), SEP, *engine.tokenize("near.py\nnear = 1\n"),
                    SEP, *engine.tokenize("nearest.py\nnearest = 2\n"), SEP]
    assert len(repo) <= budget.repo_tokens + 1  # the planning figure the context provider uses
