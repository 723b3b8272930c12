"""Headless command line: ``python main.py <verb>`` for scripting, checks and benchmarks.

User errors (a bad file, a wrong cursor, a missing model) exit with status 2 and one
clear line on stderr — never a traceback. Results go to stdout, JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from app import APP_NAME, __version__
from app.core.errors import StarpadError

log = logging.getLogger("starpad.cli")
EXIT_USER_ERROR = 2


class UsageError(StarpadError):
    """A command-line argument that makes no sense (reported like any user error)."""


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
    offset = sum(len(l) + 1 for l in lines[: line - 1]) + col - 1
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
        ("FIM tokens", f"prefix={fim.pre} suffix={fim.suf} middle={fim.mid} pad={fim.pad} repo={fim.rep} file_sep={fim.sep}"),
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
    if args.max_tokens < 1:
        raise UsageError("--max-tokens must be at least 1")

    engine = Engine()
    info = engine.load(args.model, EngineConfig(n_ctx=args.n_ctx, n_threads=args.threads))
    for note in info.notes:
        print(f"note: {note}", file=sys.stderr)
    request = CompletionRequest(
        prefix=prefix,
        suffix=suffix,
        layout=Layout(args.layout),
        max_tokens=args.max_tokens,
        single_line=args.single_line,
        sampling=SamplingParams(temperature=args.temperature, seed=args.seed),
        path=str(args.file) if args.file else None,
    )
    stream = None if args.json else (lambda piece: (sys.stdout.write(piece), sys.stdout.flush()))
    result = engine.complete(request, on_text=stream)
    if args.json:
        _print_json(
            {
                "text": result.text,
                "prompt_tokens": result.prompt.tokens,
                "layout": result.prompt.layout.value,
                "stop_reason": result.stop_reason,
                "stats": result.stats.to_json(),
            }
        )
    else:
        s = result.stats
        sys.stdout.write("\n")
        print(
            f"[{result.stop_reason}] prompt {s.prompt_tokens} tok ({s.cached_tokens} cached) at {s.prompt_tps:.1f} tok/s, "
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

    if args.ctx < 256:
        raise UsageError("--ctx must be at least 256 tokens")
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

    def stage(index: int, name: str, what: str) -> None:
        print(f"[{index + 1}/{len(args.models)}] {name}: {what}", file=sys.stderr)

    settings = CompareSettings(max_tokens=args.max_tokens, n_ctx=args.n_ctx, threads=args.threads)
    report = compare_models(list(args.models), prefix, suffix, settings, on_stage=stage)
    if args.out:
        report.write(args.out)
    if args.json:
        _print_json(report.to_json())
    else:
        print(report.to_markdown())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--n-ctx", type=int, default=16384)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--single-line", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_complete)
    p = verbs.add_parser("fit", help="which StarCoder2 quants fit this machine's memory")
    p.add_argument("--ctx", type=int, default=16384)
    p.add_argument("--mmap", action="store_true", help="estimate for loading with mmap (Starpad loads without)")
    p.add_argument("--ram-gb", type=float, help="judge for this much available RAM instead of this machine's")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_fit)
    p = verbs.add_parser("compare", help="run one prompt on 2-4 quants and compare speed, memory, quality")
    p.add_argument("--models", type=Path, nargs="+", required=True)
    p.add_argument("--file", type=Path)
    p.add_argument("--cursor", help="LINE:COL, 1-based")
    p.add_argument("--prefix-file", type=Path)
    p.add_argument("--suffix-file", type=Path)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--n-ctx", type=int, default=4096)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, help="also write comparison.md and comparison.json here")
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
