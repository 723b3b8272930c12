"""The headless CLI as a script would use it: real processes, real model."""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import __main__ as entry
from app.cli import (
    UsageError,
    build_parser,
    finite_float,
    int_range,
    output_dir_problem,
    save_somewhere_safe,
    split_at_cursor,
)
from app.cli import run as cli_run
from app.core.engine import CompletionRequest, Engine, EngineConfig
from app.core.fim import Layout

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "def f(x):\n    y = x * 2\n    \n    return y\n"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, timeout=120)


def test_inspect_json(tiny_model: Path) -> None:
    proc = run("inspect", str(tiny_model), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["arch"] == "starcoder2"
    assert data["file_type"] == "F16"
    assert data["n_layer"] == 2 and data["n_embd"] == 64 and data["n_head"] == 4 and data["n_head_kv"] == 2
    assert data["n_vocab"] == 49152 and data["n_ctx_train"] == 16384
    assert data["size_bytes"] == tiny_model.stat().st_size
    assert data["n_params"] == 3_237_504
    assert data["fim"] == {"pre": 1, "suf": 3, "mid": 2, "pad": 4, "rep": 5, "sep": 6}


@pytest.mark.parametrize("layout", ["spm", "psm"])
def test_complete_json_matches_the_engine(tiny_model: Path, tmp_path: Path, layout: str) -> None:
    source = tmp_path / "f.py"
    source.write_text(SOURCE)
    proc = run("complete", "--model", str(tiny_model), "--file", str(source), "--cursor", "3:5",
               "--layout", layout, "--max-tokens", "6", "--n-ctx", "2048", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) >= {"text", "prompt_tokens", "stop_reason", "stats"}
    assert set(data["stats"]) == {"prompt_tokens", "cached_tokens", "generated_tokens", "prompt_ms", "ttft_ms",
                                  "prompt_tps", "gen_tps", "ctx_used", "ctx_size", "reused_exact",
                                  "reused_shifted", "restored", "evaluated", "fresh_spans"}
    assert data["stats"]["ctx_size"] == 2048
    engine = Engine()
    engine.load(tiny_model, EngineConfig(n_ctx=2048))
    prefix, suffix = split_at_cursor(SOURCE, "3:5")
    expected = engine.complete(CompletionRequest(prefix, suffix, Layout(layout), max_tokens=6))
    assert data["prompt_tokens"] == expected.prompt.tokens
    assert data["prompt_tokens"][0] == 1  # <fim_prefix>
    assert data["text"] == expected.text  # greedy: the same in another process


def test_complete_prefix_and_suffix_files(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("x = ")
    (tmp_path / "s.txt").write_text("\nprint(x)\n")
    proc = run("complete", "--model", str(tiny_model), "--prefix-file", str(tmp_path / "p.txt"),
               "--suffix-file", str(tmp_path / "s.txt"), "--max-tokens", "3", "--n-ctx", "1024", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["stats"]["generated_tokens"] <= 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cursor", "99:1"], "outside the file"),
        (["--cursor", "nope"], "LINE:COL"),
        (["--cursor", "1:50"], "column 50"),
        ([], "--file needs --cursor"),
    ],
)
def test_user_errors_exit_2_with_one_line(tiny_model: Path, tmp_path: Path, args: list[str], message: str) -> None:
    source = tmp_path / "f.py"
    source.write_text(SOURCE)
    proc = run("complete", "--model", str(tiny_model), "--file", str(source), *args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_missing_model_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("x")
    proc = run("complete", "--model", str(tmp_path / "none.gguf"), "--prefix-file", str(tmp_path / "p.txt"))
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_split_at_cursor() -> None:
    assert split_at_cursor("ab\ncd", "2:2") == ("ab\nc", "d")
    assert split_at_cursor("ab\ncd", "1:3") == ("ab", "\ncd")
    with pytest.raises(UsageError):
        split_at_cursor("ab", "0:1")


# ------------------------------------------------ numbers, contexts, paths (issue #12)
LONG_SOURCE = "".join(f"def function_{i}(value):\n    return value * {i} + {i * 7}\n\n" for i in range(80))


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """A user error: exit 2 and exactly one line on stderr, never a traceback or a crash."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture()
def prefix_file(tmp_path: Path) -> Path:
    path = tmp_path / "long.py"
    path.write_text(LONG_SOURCE)
    return path


@pytest.fixture()
def second_model(tiny_model: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "starcoder2-tiny-copy-F16.gguf"
    shutil.copyfile(tiny_model, copy)
    return copy


def test_a_context_too_small_is_refused_not_an_abort(tiny_model: Path, prefix_file: Path) -> None:
    proc = run("complete", "--model", str(tiny_model), "--prefix-file", str(prefix_file), "--n-ctx", "16")
    assert "--n-ctx: must be from 64 to 1,048,576, not '16'" in one_error_line(proc)  # was exit 134


def test_a_context_beyond_training_is_refused(tiny_model: Path, prefix_file: Path) -> None:
    proc = run("complete", "--model", str(tiny_model), "--prefix-file", str(prefix_file), "--n-ctx", "16385")
    assert "more than the model was trained on (16,384)" in one_error_line(proc)


def test_a_small_context_completes_and_reports_the_cut(tiny_model: Path, prefix_file: Path) -> None:
    proc = run("complete", "--model", str(tiny_model), "--prefix-file", str(prefix_file), "--n-ctx", "100",
               "--max-tokens", "8", "--threads", "2", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]  # was 134: GGML_ASSERT(n_tokens_all <= cparams.n_batch)
    data = json.loads(proc.stdout)
    assert data["stats"]["ctx_size"] == 256 and len(data["prompt_tokens"]) <= 256 - 8
    assert 0 < data["prompt_cut"]["prefix_chars_dropped"] < len(LONG_SOURCE)
    assert data["prompt_cut"]["suffix_chars_dropped"] == 0
    notes = [line.removeprefix("note: ") for line in proc.stderr.splitlines() if line.startswith("note: ")]
    assert notes == data["notes"]
    assert any("rounds the context up to 256" in n for n in notes)
    assert any(f"{data['prompt_cut']['prefix_chars_dropped']:,} characters dropped before the cursor" in n
               for n in notes)


def test_compare_with_a_small_context(tiny_model: Path, second_model: Path, prefix_file: Path) -> None:
    proc = run("compare", "--models", str(tiny_model), str(second_model), "--prefix-file", str(prefix_file),
               "--n-ctx", "100", "--max-tokens", "4", "--threads", "2", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]  # was 134
    assert len(json.loads(proc.stdout)["results"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["complete", "--threads", "100000"], "--threads: must be from 1 to 512"),  # was SIGSEGV (139)
        (["complete", "--temperature", "nan"], "--temperature: must be a number from 0 to 5"),
        (["complete", "--n-ctx", str(2**32)], "--n-ctx: must be from 64"),
        (["compare", "--max-tokens", "0"], "--max-tokens: must be from 1 to 4,096"),
        (["fit", "--ram-gb", "nan"], "--ram-gb: must be a number above 0 to 1,000,000, not 'nan'"),
        (["bench", "--threads", "100000"], "--threads: must be from 1 to 512"),
        (["bench", "--rounds", "0"], "--rounds: must be from 1"),
    ],
)
def test_bad_numbers_are_one_line_errors_in_a_real_process(
    tiny_model: Path, prefix_file: Path, args: list[str], message: str
) -> None:
    verb, *option = args
    base = {
        "complete": ["--model", str(tiny_model), "--prefix-file", str(prefix_file)],
        "compare": ["--models", str(tiny_model), str(tiny_model), "--prefix-file", str(prefix_file)],
        "fit": [],
        "bench": ["--quick", "--no-build"],
    }[verb]
    line = one_error_line(run(verb, *base, *option))
    assert line.startswith(f"starpad {verb}: error: argument ") and message in line


# The options every verb validates, with the bounds the issue asks for.
NUMERIC_OPTIONS: dict[tuple[str, str], tuple[type, float, float, bool]] = {
    ("complete", "--threads"): (int, 1, 512, False),
    ("complete", "--n-ctx"): (int, 64, 1 << 20, False),
    ("complete", "--max-tokens"): (int, 1, 4096, False),
    ("complete", "--seed"): (int, 0, 2**32 - 1, False),
    ("complete", "--temperature"): (float, 0.0, 5.0, False),
    ("compare", "--threads"): (int, 1, 512, False),
    ("compare", "--n-ctx"): (int, 64, 1 << 20, False),
    ("compare", "--max-tokens"): (int, 1, 4096, False),
    ("fit", "--ctx"): (int, 256, 1 << 20, False),
    ("fit", "--ram-gb"): (float, 0.0, 1e6, True),  # above 0
}
BASE_ARGS = {
    "complete": ["--model", "m.gguf", "--prefix-file", "p.py"],
    "compare": ["--models", "a.gguf", "b.gguf", "--prefix-file", "p.py"],
    "fit": [],
}
NUMBER_TEXT = st.one_of(
    st.integers().map(str),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-10, max_value=10).map(str),
    st.text(max_size=12),
    st.sampled_from(["nan", "-nan", "inf", "-inf", "Infinity", "1e999", "0", "-0", "", " 7 ", "0x10", "1_000",
                     "4294967296", "9" * 5000]),
)


def expected_value(text: str, kind: type, lo: float, hi: float, lo_open: bool) -> float | None:
    """What a correct option accepts, computed independently of the CLI."""
    try:
        value = kind(text)
    except (ValueError, OverflowError):
        return None
    above_lo = value > lo if lo_open else value >= lo
    return value if math.isfinite(value) and above_lo and value <= hi else None


def parse_quietly(argv: list[str]) -> tuple[argparse.Namespace | None, int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return build_parser().parse_args(argv), 0, err.getvalue()
        except SystemExit as exc:
            return None, int(exc.code or 0), err.getvalue()


@settings(max_examples=300, deadline=None)
@given(option=st.sampled_from(sorted(NUMERIC_OPTIONS)), text=NUMBER_TEXT)
def test_numeric_options_accept_exactly_their_range_or_say_why_in_one_line(
    option: tuple[str, str], text: str
) -> None:
    verb, flag = option
    kind, lo, hi, lo_open = NUMERIC_OPTIONS[option]
    expected = expected_value(text, kind, lo, hi, lo_open)
    args, code, stderr = parse_quietly([verb, *BASE_ARGS[verb], f"{flag}={text}"])
    parsed = getattr(args, flag.lstrip("-").replace("-", "_"), None)
    assert parsed == expected
    assert code == (0 if expected is not None else 2)
    lines = stderr.splitlines()
    assert len(lines) == (0 if expected is not None else 1)
    assert all(line.startswith(f"starpad {verb}: error: argument {flag}: must be") for line in lines)


@given(st.integers(min_value=-(2**40), max_value=2**40), st.integers(min_value=0, max_value=2**20))
def test_int_range_accepts_exactly_its_bounds(value: int, width: int) -> None:
    lo, hi = -width, width
    try:
        got: int | None = int_range(lo, hi)(str(value))
        message = ""
    except argparse.ArgumentTypeError as exc:
        got, message = None, str(exc)
    assert got == (value if lo <= value <= hi else None)
    assert message == ("" if lo <= value <= hi else f"must be from {lo:,} to {hi:,}, not {str(value)!r}")


def test_validators() -> None:
    assert int_range(1, 512)(" 512 ") == 512
    for bad in ("513", "0", "x", "", "1.5", "9" * 5000):
        with pytest.raises(argparse.ArgumentTypeError):
            int_range(1, 512)(bad)
    assert finite_float(0, 5)("0") == 0.0 and finite_float(0, 5)("5") == 5.0
    for bad in ("nan", "inf", "-inf", "-1", "5.0001", "1e999", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be a number from 0 to 5"):
            finite_float(0, 5)(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="above 0"):
        finite_float(0, 1, lo_open=True)("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"not '9999"):  # a huge argument stays one short line
        int_range(1, 2)("9" * 5000)


# ------------------------------------------------------------------ --out
def test_out_paths_are_checked_before_any_work(tmp_path: Path) -> None:
    a_file = tmp_path / "results.md"
    a_file.write_text("precious")
    assert output_dir_problem(tmp_path / "new" / "deeper") is None
    assert output_dir_problem(tmp_path) is None
    assert output_dir_problem(a_file) == f"{a_file} exists and is not a folder"
    assert output_dir_problem(a_file / "sub") == f"cannot create {a_file / 'sub'}: {a_file} is not a folder"
    assert a_file.read_text() == "precious"


@pytest.mark.parametrize("verb", ["compare", "bench"])
def test_an_out_that_is_a_file_fails_before_the_run(verb: str, tiny_model: Path, prefix_file: Path,
                                                    tmp_path: Path) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("precious")
    args = {
        "compare": ["--models", str(tiny_model), str(tiny_model), "--prefix-file", str(prefix_file)],
        "bench": ["--quick", "--no-build"],
    }[verb]
    line = one_error_line(run(verb, *args, "--out", str(a_file)))
    assert line == f"starpad {verb}: error: argument --out: {a_file} exists and is not a folder " \
                   f"(see starpad {verb} --help)"
    assert a_file.read_text() == "precious"


def test_results_survive_an_out_folder_that_fails_at_the_end(
    tiny_model: Path, second_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.core.compare import ComparisonReport

    out = tmp_path / "out"
    original = ComparisonReport.write

    def full_disk(self: ComparisonReport, directory: Path, stem: str = "comparison") -> tuple[Path, Path]:
        if directory == out:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, directory, stem)

    monkeypatch.setattr(ComparisonReport, "write", full_disk)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / "p.py").write_text("x = ")
    code = cli_run(["compare", "--models", str(tiny_model), str(second_model), "--prefix-file",
                    str(tmp_path / "p.py"), "--max-tokens", "4", "--n-ctx", "512", "--threads", "2",
                    "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert len(json.loads(captured.out)["results"]) == 2  # on stdout whatever happens to --out
    (error,) = [line for line in captured.err.splitlines() if line.startswith("starpad")]
    assert error.startswith(f"starpad: error: cannot write the comparison results to {out} (No space left on device)")
    (rescue,) = tmp_path.glob("starpad-comparison-*")
    assert error.endswith(f"they are saved in {rescue}")
    assert json.loads((rescue / "comparison.json").read_text())["results"]
    assert (rescue / "comparison.md").read_text().startswith("Prompt:")


def test_save_somewhere_safe_says_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(UsageError, match="they are saved in") as info:
        save_somewhere_safe(lambda folder: (folder / "r.json").write_text("{}"), Path("/gone"), "bench",
                            OSError(errno.EACCES, "Permission denied"))
    (rescue,) = tmp_path.glob("starpad-bench-*")
    assert str(rescue) in str(info.value) and (rescue / "r.json").read_text() == "{}"


# ------------------------------------------------------------ entry point
@pytest.mark.parametrize("argv", [["complet"], ["-v", "complet", "--model", "m.gguf"]])
def test_a_mistyped_verb_is_an_unknown_command_not_a_window(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), *argv], capture_output=True, text=True,
                          timeout=60)  # the window opened (and waited) before
    line = one_error_line(proc)
    assert line.startswith("starpad: error: unknown command 'complet' (did you mean complete")


@pytest.mark.parametrize(
    ("arg", "is_path"),
    [("notes.py", True), ("./TODO", True), ("src/app", True), ("complet", False), ("fitt", False),
     ("x" * 5000, False)],
)
def test_what_looks_like_a_path(arg: str, is_path: bool) -> None:
    assert entry.looks_like_a_path(arg) is is_path


def test_an_existing_file_without_extension_is_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Makefile").write_text("all:\n")
    assert entry.looks_like_a_path("Makefile")


def test_unknown_commands_suggest_the_nearest_verbs() -> None:
    assert "(did you mean compare or complete?)" in entry.unknown_command_message("comapre",
                                                                                  ("complete", "compare", "fit"))
    assert "(did you mean fit?)" in entry.unknown_command_message("fitt", ("complete", "compare", "fit"))
    assert "did you mean" not in entry.unknown_command_message("zzz", ("complete", "compare", "fit"))


# ------------------------------------------------------------------ complete --repo
def test_complete_repo_sends_the_folders_context_and_lists_it(tiny_model: Path, tmp_path: Path) -> None:
    repo = tmp_path / "proj"
    (repo / ".git").mkdir(parents=True)
    (repo / ".gitignore").write_text("secret_config.py\n")
    dep = "def helper(x):\n    return x + 1\n"
    (repo / "dep.py").write_text(dep)
    (repo / "secret_config.py").write_text("TOKEN = 'abc123'\n")
    main = "from dep import helper\nimport secret_config\n\nprint(helper(1))\n"
    (repo / "main.py").write_text(main)
    proc = run("complete", "--model", str(tiny_model), "--repo", str(repo), "--file", str(repo / "main.py"),
               "--cursor", "4:7", "--layout", "psm", "--max-tokens", "2", "--n-ctx", "2048", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    engine = Engine()
    engine.load(tiny_model, EngineConfig(n_ctx=2048))
    try:
        dep_tokens = engine.tokenize("dep.py\n" + dep)
        prefix, suffix = split_at_cursor(main, "4:7")
        expected = [5, *engine.tokenize("proj"), 6, *dep_tokens, 6,
                    1, *engine.tokenize("main.py\n" + prefix), 3, *engine.tokenize(suffix), 2]
    finally:
        engine.close()
    assert data["repo_name"] == "proj"
    assert data["context_files"] == [
        {"path": "dep.py", "tokens": 1 + len(dep_tokens), "whole": True, "lines": None, "why": "import"}]
    assert data["context_skipped"] == [{"path": "secret_config.py", "reason": "ignored by .gitignore"}]
    assert data["prompt_tokens"] == expected
    assert data["context_tokens"] == expected.index(1)  # <repo_name> … the current file's <file_sep>


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--repo", "{missing}", "--file", "{file}", "--cursor", "1:1"], "is not a folder"),
     (["--repo", "{folder}", "--prefix-file", "{file}"], "--repo needs --file")],
)
def test_complete_repo_user_errors_are_one_line(tiny_model: Path, tmp_path: Path, extra: list[str],
                                                 message: str) -> None:
    source = tmp_path / "f.py"
    source.write_text(SOURCE)
    names = {"missing": str(tmp_path / "nope"), "file": str(source), "folder": str(tmp_path)}
    proc = run("complete", "--model", str(tiny_model), *(arg.format(**names) for arg in extra))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr
