"""Headless command line: ``python main.py <verb>`` for scripting, checks and benchmarks.

User errors (a bad file, a wrong cursor, a missing model) exit with status 2 and one
clear line on stderr — never a traceback. Results go to stdout, JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from app import APP_NAME, __version__
from app.core.errors import StarpadError
from app.core.limits import MAX_N_CTX, MAX_NEW_TOKENS, MAX_TEMPERATURE, MAX_THREADS, MIN_N_CTX

log = logging.getLogger("starpad.cli")
EXIT_USER_ERROR = 2
#: llama.cpp's sampler seeds are 32-bit unsigned.
MAX_SEED = 2**32 - 1
#: ``fit --ram-gb``: a what-if for another machine, up to a petabyte.
MAX_RAM_GB = 1e6


class UsageError(StarpadError):
    """A command-line argument that makes no sense (reported like any user error)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (``starpad complete: error: …``), exit 2.

    The usage block argparse prints first would bury the one line that matters.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ------------------------------------------------------------ option types
# Declared once, used by every verb (and by ``bench``): argparse reports what they raise
# as "argument --threads: must be …", so every numeric option is checked the same way
# before any work starts.


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse ``type=``: an integer from ``lo`` to ``hi`` inclusive."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:  # also a string of more digits than Python converts
            raise argparse.ArgumentTypeError(f"must be an integer from {lo:,} to {hi:,}, not {_show(text)}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be from {lo:,} to {hi:,}, not {_show(text)}")
        return value

    parse.__name__ = f"integer {lo}..{hi}"
    return parse


def finite_float(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type=``: a finite number in [lo, hi] (or (lo, hi] with ``lo_open``)."""
    low = f"above {_number(lo)}" if lo_open else f"from {_number(lo)}"

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {low} to {_number(hi)}, not {_show(text)}") from None
        above_lo = value > lo if lo_open else value >= lo
        if not (math.isfinite(value) and above_lo and value <= hi):
            raise argparse.ArgumentTypeError(f"must be a number {low} to {_number(hi)}, not {_show(text)}")
        return value

    parse.__name__ = f"number {lo:g}..{hi:g}"
    return parse


def _number(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _show(text: str) -> str:
    """The offending argument, quoted and cut short: a 5,000-digit number stays one line."""
    shown = text if len(text) <= 24 else text[:21] + "..."
    return repr(shown)


def output_dir(text: str) -> Path:
    """An argparse ``type=`` for ``--out DIR``: checked *before* a run of many minutes,
    so its results are not lost to a typo at the end."""
    path = Path(text).expanduser()
    problem = output_dir_problem(path)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return path


def output_dir_problem(path: Path) -> str | None:
    """Why results cannot be written into folder ``path`` (created if missing), or None."""
    if path.exists() and not path.is_dir():
        return f"{path} exists and is not a folder"
    existing = path
    while not existing.exists():  # the folder is created later: its nearest existing parent decides
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot create {path}: {existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def save_somewhere_safe(write: Callable[[Path], object], wanted: Path, what: str, exc: OSError) -> NoReturn:
    """``write`` failed into ``wanted`` after the work was done: keep the results in a new
    temporary folder and fail with one line that says where they are."""
    reason = exc.strerror or str(exc)
    try:
        rescue = Path(tempfile.mkdtemp(prefix=f"starpad-{what}-"))
        write(rescue)
    except OSError as second:
        raise UsageError(f"cannot write the {what} results to {wanted} ({reason}) "
                         f"nor to a temporary folder ({second.strerror or second})") from None
    raise UsageError(f"cannot write the {what} results to {wanted} ({reason}); they are saved in {rescue}")


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} is not UTF-8 text: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


def split_at_cursor(text: str, cursor: str) -> tuple[str, str]:
    """Split ``text`` at ``LINE:COL`` (both 1-based, as editors show them)."""
    try:
        line_s, col_s = cursor.split(":")
        line, col = int(line_s), int(col_s)
    except ValueError:
        raise UsageError(f"--cursor must be LINE:COL (e.g. 12:5), not {cursor!r}") from None
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        raise UsageError(f"--cursor line {line} is outside the file (1..{len(lines)})")
    if not 1 <= col <= len(lines[line - 1]) + 1:
        raise UsageError(f"--cursor column {col} is outside line {line} (1..{len(lines[line - 1]) + 1})")
    offset = sum(len(text_line) + 1 for text_line in lines[: line - 1]) + col - 1
    return text[:offset], text[offset:]


def cmd_inspect(args: argparse.Namespace) -> int:
    from app.core.model_info import model_info
    from app.core.units import format_bytes

    info = model_info(args.model)
    if args.json:
        _print_json(info.to_json())
        return 0
    fim = info.fim
    rows = [
        ("name", info.name),
        ("architecture", info.arch),
        ("quantization", info.file_type),
        ("parameters", f"{info.n_params:,}"),
        ("file size", f"{format_bytes(info.size_bytes)} ({info.size_bytes:,} bytes)"),
        ("trained context", f"{info.n_ctx_train:,}"),
        ("layers / width", f"{info.n_layer} / {info.n_embd}"),
        ("heads / kv heads", f"{info.n_head} / {info.n_head_kv}"),
        ("vocabulary", f"{info.n_vocab:,}"),
        ("FIM tokens", f"prefix={fim.pre} suffix={fim.suf} middle={fim.mid} pad={fim.pad} repo={fim.rep} "
                       f"file_sep={fim.sep}"),
        ("mode", info.mode_description),
    ]
    rows += [("note", note) for note in info.notes]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    from app.core.engine import CompletionRequest, Engine, EngineConfig, SamplingParams
    from app.core.fim import Layout

    prefix, suffix = _prompt_from_args(args)

    engine = Engine()
    info = engine.load(args.model, EngineConfig(n_ctx=args.n_ctx, n_threads=args.threads))
    notes = [*_threads_note(args.threads), *info.notes]
    if engine.n_ctx != args.n_ctx:
        notes.append(f"llama.cpp rounds the context up to {engine.n_ctx:,} tokens (asked for {args.n_ctx:,})")
    for note in notes:
        _note(note)
    request = CompletionRequest(
        prefix=prefix,
        suffix=suffix,
        layout=Layout(args.layout),
        max_tokens=args.max_tokens,
        single_line=args.single_line,
        sampling=SamplingParams(temperature=args.temperature, seed=args.seed),
        path=str(args.file) if args.file else None,
    )
    def stream(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    result = engine.complete(request, on_text=None if args.json else stream)
    if not args.json:
        sys.stdout.write("\n")  # end the streamed text before any note
        sys.stdout.flush()
    prompt = result.prompt
    suffix_dropped = 0 if prompt.layout is Layout.PREFIX_ONLY else prompt.suffix_chars_dropped
    if prompt.prefix_chars_dropped or suffix_dropped:
        cut = (f"the prompt was cut to fit the {engine.n_ctx:,}-token context: {prompt.prefix_chars_dropped:,} "
               f"characters dropped before the cursor, {suffix_dropped:,} after")
        notes.append(cut)
        _note(cut)
    if args.json:
        _print_json(
            {
                "text": result.text,
                "prompt_tokens": prompt.tokens,
                "layout": prompt.layout.value,
                "stop_reason": result.stop_reason,
                "stats": result.stats.to_json(),
                "prompt_cut": {"prefix_chars_dropped": prompt.prefix_chars_dropped,
                               "suffix_chars_dropped": suffix_dropped},
                "notes": notes,
            }
        )
    else:
        s = result.stats
        print(
            f"[{result.stop_reason}] prompt {s.prompt_tokens} tok ({s.cached_tokens} cached) "
            f"at {s.prompt_tps:.1f} tok/s, "
            f"first token {s.ttft_ms:.0f} ms, {s.generated_tokens} generated at {s.gen_tps:.1f} tok/s, "
            f"context {s.ctx_used:,} / {s.ctx_size:,}",
            file=sys.stderr,
        )
    engine.close()
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from app.core.catalog import builtin_catalog
    from app.core.memory_fit import MemoryInfo, detect_memory, fit_report
    from app.core.units import format_bytes

    memory = detect_memory()
    if args.ram_gb is not None:  # what-if: judge for another machine
        memory = MemoryInfo(int(args.ram_gb * 1e9), int(args.ram_gb * 1e9), memory.gpus, memory.unified)
    report = fit_report(builtin_catalog(), memory, args.ctx, use_mmap=args.mmap)
    if args.json:
        _print_json(report.to_json())
        return 0
    print(f"RAM {format_bytes(memory.total_bytes)} total, {format_bytes(memory.available_bytes)} available; "
          f"context {args.ctx:,} tokens")
    for gpu in memory.gpus:
        print(f"GPU {gpu.name}: {format_bytes(gpu.total_bytes)} ({format_bytes(gpu.free_bytes)} free)")
    for row in report.rows:
        mark = {"fits": "fits", "tight": "tight", "too_large": "too large"}[row.verdict]
        star = "  ← recommended" if report.recommended == row.entry else ""
        print(f"  {row.entry.family:<15} {row.entry.quant:<7} file {format_bytes(row.entry.size_bytes):>9}  "
              f"needs {format_bytes(row.need.total_bytes):>9}"
              + (f" ({format_bytes(row.need.reclaimable_bytes)} reclaimable)" if row.need.reclaimable_bytes else "")
              + "  "
              f"{mark}{star}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from app.core.download import HubDownloader, Progress
    from app.core.units import format_bytes

    def report(p: Progress) -> None:
        eta = f", {p.eta_seconds:.0f} s left" if p.eta_seconds is not None else ""
        print(f"\r{p.fraction:6.1%}  {format_bytes(p.downloaded)} of {format_bytes(p.total)}  "
              f"{format_bytes(p.bytes_per_second)}/s{eta}   ", end="", file=sys.stderr, flush=True)

    downloader = HubDownloader(cache_dir=args.cache_dir)
    path = downloader.download(args.repo, args.file, revision=args.revision, progress=report)
    print(file=sys.stderr)
    if args.json:
        _print_json({"path": str(path), "size_bytes": path.stat().st_size})
    else:
        print(path)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from app.core.local_models import find_local_models
    from app.core.units import format_bytes

    models = find_local_models()
    if args.json:
        _print_json([m.to_json() for m in models])
        return 0
    if not models:
        print("no local models (download one with `starpad download REPO FILE`)")
    for model in models:
        print(f"{model.quant:<8} {format_bytes(model.size_bytes):>9}  {model.path}")
    return 0


def _prompt_from_args(args: argparse.Namespace) -> tuple[str, str]:
    if args.file is not None:
        if args.cursor is None:
            raise UsageError("--file needs --cursor LINE:COL")
        return split_at_cursor(_read_text(args.file, "file"), args.cursor)
    if args.prefix_file is not None:
        prefix = _read_text(args.prefix_file, "prefix file")
        return prefix, _read_text(args.suffix_file, "suffix file") if args.suffix_file else ""
    raise UsageError("give --file F --cursor LINE:COL, or --prefix-file P [--suffix-file S]")


def cmd_compare(args: argparse.Namespace) -> int:
    from app.core.compare import MAX_MODELS, CompareSettings, compare_models

    if not 2 <= len(args.models) <= MAX_MODELS:
        raise UsageError(f"--models takes 2 to {MAX_MODELS} model files")
    prefix, suffix = _prompt_from_args(args)
    for note in _threads_note(args.threads):
        _note(note)

    def stage(index: int, name: str, what: str) -> None:
        print(f"[{index + 1}/{len(args.models)}] {name}: {what}", file=sys.stderr)

    settings = CompareSettings(max_tokens=args.max_tokens, n_ctx=args.n_ctx, threads=args.threads)
    report = compare_models(list(args.models), prefix, suffix, settings, on_stage=stage)
    # Results first: whatever happens to --out, they are on stdout.
    if args.json:
        _print_json(report.to_json())
    else:
        print(report.to_markdown())
    if args.out:
        try:
            report.write(args.out)
        except OSError as exc:  # the folder vanished or filled up during the run
            sys.stdout.flush()
            save_somewhere_safe(report.write, args.out, "comparison", exc)
    return 0


def _threads_note(threads: int | None) -> list[str]:
    """More threads than cores: not an error (another machine may run the same script),
    but worth a word, since llama.cpp then runs slower."""
    cores = os.cpu_count() or 1
    if threads is not None and threads > cores:
        return [f"{threads} threads on {cores} logical cores: llama.cpp runs slower than with {cores} or fewer"]
    return []


MAX_TOKENS = int_range(1, MAX_NEW_TOKENS)
TEMPERATURE = finite_float(0.0, MAX_TEMPERATURE)
SEED = int_range(0, MAX_SEED)
N_CTX = int_range(MIN_N_CTX, MAX_N_CTX)
N_CTX_HELP = f"context tokens, {MIN_N_CTX} to the model's trained context (llama.cpp rounds up to a multiple of 256)"
#: ggml's thread pool has room for 512 threads (GGML_MAX_N_THREADS); more crashed llama.cpp.
THREADS = int_range(1, MAX_THREADS)
THREADS_HELP = f"1 to {MAX_THREADS} (default: physical cores)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="starpad",
        description=f"{APP_NAME} {__version__}: local StarCoder2 code completion. Without a verb the window opens.",
    )
    parser.add_argument("--version", action="version", version=f"{APP_NAME} {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log events to stderr")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    p = verbs.add_parser("inspect", help="describe a GGUF model file")
    p.add_argument("model", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = verbs.add_parser("complete", help="fill in the middle at a cursor, headless")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--file", type=Path)
    p.add_argument("--cursor", help="LINE:COL, 1-based")
    p.add_argument("--prefix-file", type=Path)
    p.add_argument("--suffix-file", type=Path)
    p.add_argument("--layout", choices=["spm", "psm"], default="spm")
    p.add_argument("--max-tokens", type=MAX_TOKENS, default=64, help=f"1 to {MAX_NEW_TOKENS}")
    p.add_argument("--temperature", type=TEMPERATURE, default=0.0, help=f"0 (greedy) to {MAX_TEMPERATURE:g}")
    p.add_argument("--seed", type=SEED, default=42, help=f"0 to {MAX_SEED}")
    p.add_argument("--n-ctx", type=N_CTX, default=16384, help=N_CTX_HELP)
    p.add_argument("--threads", type=THREADS, default=None, help=THREADS_HELP)
    p.add_argument("--single-line", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_complete)
    p = verbs.add_parser("fit", help="which StarCoder2 quants fit this machine's memory")
    p.add_argument("--ctx", type=int_range(256, MAX_N_CTX), default=16384, help=f"256 to {MAX_N_CTX:,}")
    p.add_argument("--mmap", action="store_true", help="estimate for loading with mmap (Starpad loads without)")
    p.add_argument("--ram-gb", type=finite_float(0, MAX_RAM_GB, lo_open=True),
                   help="judge for this much available RAM instead of this machine's")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_fit)
    p = verbs.add_parser("compare", help="run one prompt on 2-4 quants and compare speed, memory, quality")
    p.add_argument("--models", type=Path, nargs="+", required=True)
    p.add_argument("--file", type=Path)
    p.add_argument("--cursor", help="LINE:COL, 1-based")
    p.add_argument("--prefix-file", type=Path)
    p.add_argument("--suffix-file", type=Path)
    p.add_argument("--max-tokens", type=MAX_TOKENS, default=32, help=f"1 to {MAX_NEW_TOKENS}")
    p.add_argument("--n-ctx", type=N_CTX, default=4096, help=N_CTX_HELP)
    p.add_argument("--threads", type=THREADS, default=None, help=THREADS_HELP)
    p.add_argument("--out", type=output_dir, help="also write comparison.md and comparison.json into this folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = verbs.add_parser("download", help="download a model file from the Hub (resumable, sha256-verified)")
    p.add_argument("repo")
    p.add_argument("file")
    p.add_argument("--revision", default="main")
    p.add_argument("--cache-dir", type=Path, default=None, help="default: the Hugging Face cache")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_download)

    p = verbs.add_parser("models", help="list local GGUF models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    # Parsed by bench.harness itself (see `main.py bench --help`); listed here for the help text.
    verbs.add_parser("bench", help="benchmarks: speed vs llama.cpp, re-completion, UI stalls, memory", add_help=False)
    return parser


VERBS = ("inspect", "complete", "fit", "compare", "download", "models", "bench")


def cmd_bench(argv: list[str]) -> int:
    """Benchmarks live in the source tree's ``bench/`` package, not in the frozen app."""
    try:
        from bench.harness import main as bench_main
    except ImportError:
        print("starpad: error: benchmarks run from a source checkout (bench/ is not part of the app bundle)",
              file=sys.stderr)
        return EXIT_USER_ERROR
    logging.basicConfig(level=logging.INFO if "-v" in argv else logging.WARNING, format="%(name)s: %(message)s")
    return bench_main([a for a in argv if a != "-v"])


def run(argv: list[str]) -> int:
    if argv[:1] == ["bench"]:
        return cmd_bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args.func(args))
    except StarpadError as exc:
        print(f"starpad: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ValueError as exc:  # e.g. a context too small for any prompt
        print(f"starpad: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("starpad: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `starpad fit | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
