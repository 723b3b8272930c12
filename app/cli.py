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
    from app.core.engine_api import CompletionEngine
    from app.core.fim import Layout

    prefix, suffix = _prompt_from_args(args)
    repo_folder = _repo_folder(args)

    profile = _server_profile(args)
    engine: CompletionEngine
    if profile is not None:
        if args.model is not None:
            raise UsageError("give --model FILE or --server URL, not both")
        from app.core.remote.factory import connect

        remote = connect(profile)
        engine = remote
        notes = [f"completing on {remote.describe().label} (the code leaves this machine)"]
    else:
        if args.model is None:
            raise UsageError("give --model FILE (or --server URL --server-kind KIND)")
        local = Engine()
        gpu_layers, gpu_note = _gpu_layers_for(args.model, args.n_gpu_layers, args.n_ctx)
        config = EngineConfig(n_ctx=args.n_ctx, n_threads=args.threads, n_gpu_layers=gpu_layers)
        info = local.load(args.model, config)
        engine = local
        notes = [*_threads_note(args.threads), *gpu_note, *info.notes]
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
    context = None
    if repo_folder is not None:
        request, context = _with_repo_context(request, args, repo_folder, engine, remote=profile is not None)
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
    context_json = _context_json(context, prompt) if context is not None else None
    if context_json is not None and not args.json:
        _note(f"repository context {context_json['repo_name']!r}: {len(context_json['context_files'])} parts, "
              f"{context_json['context_tokens']:,} tokens")
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
                **({"server": {"url": profile.url, "kind": profile.kind.value, "model": remote.model_name}}
                   if profile is not None else {}),
                **(context_json or {}),
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


def _gpu_layers_for(model: Path, requested: int, n_ctx: int) -> tuple[int, list[str]]:
    """``--n-gpu-layers`` (auto/all/N) → llama.cpp's count for this model, and a note
    when it says where the model runs or why the GPU is not used."""
    if requested == 0:
        return 0, []
    from app.core.memory_fit import offload_for_model
    from app.core.model_info import model_info
    from app.core.offload import AUTO

    plan = offload_for_model(requested, model_info(model), n_ctx)
    if plan.on_gpu:
        return plan.n_gpu_layers, [f"runs on {plan.device}: {plan.placement()} ({plan.reason})"]
    return 0, ([] if requested == AUTO and plan.reason == "this llama.cpp was built without a GPU backend"
               else [f"runs on the CPU: {plan.reason}"])


def _machine_speed(args: argparse.Namespace) -> Any:
    """The machine check's numbers: cached, or measured now (first run, ``--recheck``)."""
    from app.core.engine import default_threads
    from app.core.machine_check import load_cached, run_machine_check

    if args.no_speed:
        return None
    threads = args.threads or default_threads()
    speed = None if args.recheck else load_cached(threads)
    if speed is None:
        _note(f"checking this machine's speed ({threads} threads, about 20 s; cached for next time)")
        speed = run_machine_check(threads)
    return speed


def cmd_fit(args: argparse.Namespace) -> int:
    from app.core.catalog import builtin_catalog
    from app.core.memory_fit import MemoryInfo, detect_memory, fit_report
    from app.core.speed import SpeedTarget
    from app.core.units import format_bytes

    memory = detect_memory()
    if args.ram_gb is not None:  # what-if: judge for another machine
        memory = MemoryInfo(int(args.ram_gb * 1e9), int(args.ram_gb * 1e9), memory.gpus, memory.unified)
    speed = _machine_speed(args)
    target = SpeedTarget(min_gen_tps=args.min_gen_tps, max_prompt_seconds=args.max_prompt_seconds)
    report = fit_report(builtin_catalog(), memory, args.ctx, use_mmap=args.mmap, speed=speed, target=target,
                        n_gpu_layers=args.n_gpu_layers)
    if args.json:
        _print_json(report.to_json())
        return 0
    print(f"RAM {format_bytes(memory.total_bytes)} total, {format_bytes(memory.available_bytes)} available; "
          f"context {args.ctx:,} tokens")
    for gpu in memory.gpus:
        print(f"GPU {gpu.name}: {format_bytes(gpu.total_bytes)} ({format_bytes(gpu.free_bytes)} free)")
    if speed is not None:
        print(f"speed: {speed.bandwidth_bytes_per_s / 1e9:.1f} GB/s read, {speed.threads} threads "
              f"(machine check; --recheck to measure again); target ≥ {target.min_gen_tps:g} tok/s and a "
              f"{target.prompt_tokens:,}-token prompt ≤ {target.max_prompt_seconds:g} s")
    for row in report.rows:
        mark = {"fits": "fits", "tight": "tight", "too_large": "too large"}[row.verdict]
        star = "  ← recommended" if report.recommended == row.entry else ""
        speed_text = f"  {row.speed.summary()}" if row.speed else ""
        where = f"  {row.offload.placement()}" if row.offload and row.offload.on_gpu else ""
        print(f"  {row.entry.family:<15} {row.entry.quant:<7} file {format_bytes(row.entry.size_bytes):>9}  "
              f"needs {format_bytes(row.need.total_bytes):>9}"
              + (f" ({format_bytes(row.need.reclaimable_bytes)} reclaimable)" if row.need.reclaimable_bytes else "")
              + "  "
              f"{mark:<9}{speed_text}{where}{star}")
    print(report.reason)
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


def _repo_folder(args: argparse.Namespace) -> Path | None:
    """``--repo DIR``, checked before a model loads: a folder, with ``--file`` to complete in."""
    if getattr(args, "repo", None) is None:
        return None
    folder: Path = args.repo.expanduser()
    if not folder.is_dir():
        raise UsageError(f"--repo: {folder} is not a folder")
    if args.file is None:
        raise UsageError("--repo needs --file FILE and --cursor LINE:COL")
    return folder


def _with_repo_context(request: Any, args: argparse.Namespace, folder: Path, engine: Any,
                       remote: bool) -> tuple[Any, Any]:
    """``request`` with the repository block the window would build for ``folder`` with
    only ``--file`` open, after enough idle time (the whole plan, files read from disk)."""
    import dataclasses

    from app.core.fim import PromptBudget
    from app.core.repo_context import ContextInputs, RepoContext

    text = request.prefix + request.suffix
    inputs = ContextInputs(args.file, folder, {args.file: text}, remote=remote, current_text=text)
    provider = RepoContext(lambda part: len(engine.tokenize(part)))
    block = provider.build(inputs, PromptBudget(engine.n_ctx, request.max_tokens).repo_tokens)
    return dataclasses.replace(request, path=block.current_path, repo_name=block.repo_name,
                               repo_files=block.files), block


def _context_json(block: Any, prompt: Any) -> dict[str, Any]:
    """The context files in prompt order with their tokens (``<file_sep>`` + path line + text)."""
    from app.core.fim import SegmentKind

    parts = [s for s in prompt.segments if s.kind is SegmentKind.REPO][1:]  # the first is the repository name
    files = []
    for index, segment in zip(prompt.repo_file_indices, parts, strict=True):
        entry = block.entries[index]
        files.append({"path": entry.path, "tokens": 1 + len(segment.tokens), "whole": entry.whole,
                      "lines": list(entry.lines) if entry.lines else None, "why": entry.relevance.name.lower()})
    used = set(prompt.repo_file_indices)
    skipped = [{"path": e.path, "reason": "no room in the context"} for i, e in enumerate(block.entries)
               if i not in used]
    skipped += [{"path": path, "reason": reason.value} for path, reason in block.skipped]
    sep_index = next((i for i, s in enumerate(prompt.segments) if s.kind is SegmentKind.SPECIAL
                      and s.label == "<fim_prefix>"), 0)
    return {"repo_name": block.repo_name if sep_index else None,
            "context_files": files,
            "context_tokens": sum(len(s.tokens) for s in prompt.segments[:sep_index]),
            "context_skipped": skipped}


def _add_server_options(p: argparse.ArgumentParser) -> None:
    """Remote engines: only these options make Starpad send code anywhere."""
    group = p.add_argument_group("server", "complete on a server instead (the code leaves this machine; "
                                 "an API key is read from STARPAD_API_KEY)")
    group.add_argument("--server", metavar="URL", help="http(s)://host:port of the server")
    group.add_argument("--server-kind", choices=["llama-server", "openai"], help="the server's API")
    group.add_argument("--server-model", metavar="NAME", help="default: the server's first model")
    group.add_argument("--server-timeout", type=finite_float(0.5, 3600), default=30.0, metavar="SECONDS",
                       help="give up when the server is silent this long (default 30)")
    group.add_argument("--ca-bundle", type=Path, metavar="PEM", help="extra certificate authorities for https")


def _server_profile(args: argparse.Namespace, model: str | None = None) -> Any:
    """The ``ServerProfile`` the options describe, or None without ``--server``."""
    from app.core.remote.profile import ServerKind, ServerProfile

    if args.server is None:
        if args.server_kind or args.server_model or args.ca_bundle:
            raise UsageError("--server-kind, --server-model and --ca-bundle go with --server URL")
        return None
    if args.server_kind is None:
        raise UsageError("--server needs --server-kind llama-server or --server-kind openai")
    if args.ca_bundle is not None and not args.ca_bundle.is_file():
        raise UsageError(f"--ca-bundle: {args.ca_bundle} is not a file")
    profile = ServerProfile(
        name="command line", url=args.server, kind=ServerKind(args.server_kind),
        model=model if model is not None else args.server_model,
        ca_bundle=str(args.ca_bundle) if args.ca_bundle else None, timeout_s=args.server_timeout,
        api_key=os.environ.get("STARPAD_API_KEY") or None,
    ).validate()
    if profile.needs_plain_http_confirmation:
        _note(f"plain http:// to {profile.host}: the code (and any API key) travels unencrypted")
    return profile


def _models_with_server(args: argparse.Namespace) -> list[Any]:
    """``--models`` entries: existing files are local; with ``--server`` the others name server
    models, and the server's (``--server-model`` or default) model joins when none does."""
    entries: list[Path] = list(args.models or [])
    if args.server is None:
        return entries
    models: list[Any] = [m if m.is_file() else _server_profile(args, str(m)) for m in entries]
    if args.server_model is not None or all(isinstance(m, Path) for m in models):
        models.append(_server_profile(args))
    return models


def cmd_compare(args: argparse.Namespace) -> int:
    from app.core.compare import MAX_MODELS, CompareSettings, compare_models

    models = _models_with_server(args)
    if not 2 <= len(models) <= MAX_MODELS:
        raise UsageError(f"--models takes 2 to {MAX_MODELS} model files (with --server: files or server models)")
    prefix, suffix = _prompt_from_args(args)
    for note in _threads_note(args.threads):
        _note(note)

    def stage(index: int, name: str, what: str) -> None:
        print(f"[{index + 1}/{len(models)}] {name}: {what}", file=sys.stderr)

    settings = CompareSettings(max_tokens=args.max_tokens, n_ctx=args.n_ctx, threads=args.threads,
                               n_gpu_layers=args.n_gpu_layers)
    report = compare_models(models, prefix, suffix, settings, on_stage=stage)
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


def cmd_eval(args: argparse.Namespace) -> int:
    """HumanEval-Infilling pass@1: of models, of given completions, or of the canonical
    solutions (the harness's own check). Ctrl+C stops after the running program; the run
    folder keeps what finished, and the same command resumes there."""
    import signal

    from app.core.engine import CancelToken
    from app.core.evaluation.dataset import Selection, Subset
    from app.core.evaluation.runner import (
        ORACLE, EvalSettings, evaluate_completions, evaluate_models, oracle_samples, read_samples, subset_of,
    )
    from app.core.evaluation.sandbox import Sandbox, SandboxConfig

    models = _models_with_server(args) if not (args.samples or args.oracle) else []
    if args.server is not None and (args.samples or args.oracle):
        raise UsageError("--server scores a server's model: it does not go with --samples or --oracle")
    if not models and args.samples is None and not args.oracle:
        raise UsageError("give --models FILE..., --server URL, --samples FILE or --oracle")
    if args.seed is not None and args.sample is None:
        raise UsageError("--seed goes with --sample N")
    samples = read_samples(args.samples) if args.samples is not None else None
    if samples is not None and (args.limit is not None or args.sample is not None):
        raise UsageError("--limit and --sample choose problems for a model or --oracle; --samples runs every line")
    subset = Subset(args.subset) if args.subset else None
    if subset is None and samples is not None:
        subset = subset_of(samples[0][0])
        if subset is None:
            raise UsageError(f"cannot tell the subset of task {samples[0][0]!r}: give --subset")
    settings = EvalSettings(
        subset=subset or Subset.RANDOM_SPAN_LIGHT,
        selection=Selection(limit=args.limit, sample=args.sample, seed=args.seed or 0),
        max_tokens=args.max_tokens, n_ctx=args.n_ctx, threads=args.threads, n_gpu_layers=args.n_gpu_layers,
        sandbox=SandboxConfig(timeout_s=args.timeout, workers=args.workers, use_bwrap=not args.no_bwrap),
    )
    for note in _threads_note(args.threads):
        _note(note)
    sandbox = Sandbox(settings.sandbox)
    sandbox.check()
    missing = sandbox.describe_missing()
    if missing:
        _note(missing)
    cancel = CancelToken()

    def on_sigint(_signum: int, _frame: object) -> None:
        cancel.cancel()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl+C stops at once
        print("\nstopping after the running program (Ctrl+C again to quit now)…", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    progress = _EvalProgress()
    try:
        if models:
            report = evaluate_models(models, settings, sandbox=sandbox, out=args.out,
                                     on_progress=progress, cancel=cancel)
        else:
            given = samples if samples is not None else oracle_samples(settings)
            label = ORACLE if samples is None else args.samples.name
            report = evaluate_completions(given, label, settings, sandbox=sandbox, on_progress=progress,
                                          cancel=cancel)
            if args.out:
                _write_results(args.out, report)
    finally:
        signal.signal(signal.SIGINT, previous)
        progress.end()
    for note in report.notes:
        if note != missing:
            _note(note)
    if args.json:
        _print_json(report.to_json())
    else:
        print(report.to_markdown())
        for score in report.scores:
            if score.run_folder:
                resumed = f" ({score.resumed} taken over from an earlier run)" if score.resumed else ""
                print(f"{Path(score.model).name}: per-problem results in {score.run_folder}/results.jsonl{resumed}",
                      file=sys.stderr)
    if report.cancelled:
        where = " (the same command resumes where it stopped)" if models else ""
        print(f"starpad: interrupted: the scores above cover what finished{where}", file=sys.stderr)
        return 130
    return 0


def _write_results(folder: Path, report: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "results.jsonl").open("w", encoding="utf-8") as stream:
        for record in report.results:
            stream.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")


class _EvalProgress:
    """A progress bar with ETA on stderr; on a pipe, one line per tenth instead of redraws."""

    WIDTH = 24

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._shown_at = 0.0
        self._last_tenth: tuple[int, int] = (-1, -1)
        self._drawn = False

    def __call__(self, p: Any) -> None:
        import time

        now = time.monotonic()
        final = p.done == p.total
        tenth = (p.model_index, p.done * 10 // max(1, p.total))
        if self._tty and not final and now - self._shown_at < 0.2 and p.stage == "running":
            return
        if not self._tty and tenth == self._last_tenth and p.stage == "running":
            return
        self._shown_at, self._last_tenth = now, tenth
        filled = self.WIDTH * p.done // max(1, p.total)
        eta = f"ETA {_duration(p.eta_s)}" if p.eta_s is not None and not final else ""
        name = Path(p.model).name
        line = (f"[{p.model_index + 1}/{p.model_count}] {name} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{p.done:,}/{p.total:,}  {p.passed:,} passed  {eta}" if p.stage == "running"
                else f"[{p.model_index + 1}/{p.model_count}] {name}: {p.stage}…")
        if self._tty:
            sys.stderr.write("\r" + line.ljust(100)[:120])
            self._drawn = True
        else:
            sys.stderr.write(line.rstrip() + "\n")
        sys.stderr.flush()

    def end(self) -> None:
        if self._drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


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


def gpu_layers(text: str) -> int:
    """An argparse ``type=`` for ``--n-gpu-layers auto|all|N`` (app.core.offload's encoding)."""
    from app.core.offload import parse_gpu_layers

    try:
        return parse_gpu_layers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace(repr(text), _show(text))) from None


GPU_LAYERS = gpu_layers
GPU_LAYERS_HELP = "layers offloaded to the GPU: auto (as many as fit in free VRAM), all, or 0 to 999 (default 0)"
EVAL_SUBSETS = ("single-line", "multi-line", "random-span", "random-span-light")
MAX_EVAL_PROBLEMS = 100_000


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
    p.add_argument("--model", type=Path, help="a GGUF file (or use --server)")
    p.add_argument("--file", type=Path)
    p.add_argument("--cursor", help="LINE:COL, 1-based")
    p.add_argument("--repo", type=Path, metavar="DIR",
                   help="the workspace folder: other files of it become StarCoder2 repository context "
                        "(as the window builds it with only --file open)")
    p.add_argument("--prefix-file", type=Path)
    p.add_argument("--suffix-file", type=Path)
    p.add_argument("--layout", choices=["spm", "psm"], default="spm")
    p.add_argument("--max-tokens", type=MAX_TOKENS, default=64, help=f"1 to {MAX_NEW_TOKENS}")
    p.add_argument("--temperature", type=TEMPERATURE, default=0.0, help=f"0 (greedy) to {MAX_TEMPERATURE:g}")
    p.add_argument("--seed", type=SEED, default=42, help=f"0 to {MAX_SEED}")
    p.add_argument("--n-ctx", type=N_CTX, default=16384, help=N_CTX_HELP)
    p.add_argument("--threads", type=THREADS, default=None, help=THREADS_HELP)
    p.add_argument("--n-gpu-layers", type=GPU_LAYERS, default=0, help=GPU_LAYERS_HELP)
    p.add_argument("--single-line", action="store_true")
    p.add_argument("--json", action="store_true")
    _add_server_options(p)
    p.set_defaults(func=cmd_complete)
    p = verbs.add_parser("fit", help="which StarCoder2 quants fit this machine's memory")
    p.add_argument("--ctx", type=int_range(256, MAX_N_CTX), default=16384, help=f"256 to {MAX_N_CTX:,}")
    p.add_argument("--mmap", action="store_true", help="estimate for loading with mmap (Starpad loads without)")
    p.add_argument("--ram-gb", type=finite_float(0, MAX_RAM_GB, lo_open=True),
                   help="judge for this much available RAM instead of this machine's")
    p.add_argument("--recheck", action="store_true", help="measure this machine's speed again (about 20 s)")
    p.add_argument("--no-speed", action="store_true", help="memory only: no speed check or predictions")
    p.add_argument("--threads", type=THREADS, default=None, help=THREADS_HELP)
    p.add_argument("--min-gen-tps", type=finite_float(0, 1000, lo_open=True), default=8.0,
                   help="usability target: generated tokens/s (default 8)")
    p.add_argument("--max-prompt-seconds", type=finite_float(0, 3600, lo_open=True), default=30.0,
                   help="usability target: seconds for a 1,024-token prompt (default 30)")
    p.add_argument("--n-gpu-layers", type=GPU_LAYERS, default=0, help=GPU_LAYERS_HELP)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_fit)
    p = verbs.add_parser("compare", help="run one prompt on 2-4 quants and compare speed, memory, quality")
    p.add_argument("--models", type=Path, nargs="+", required=True,
                   help="2 to 4 GGUF files; with --server, entries that are not files name the server's models")
    p.add_argument("--file", type=Path)
    p.add_argument("--cursor", help="LINE:COL, 1-based")
    p.add_argument("--prefix-file", type=Path)
    p.add_argument("--suffix-file", type=Path)
    p.add_argument("--max-tokens", type=MAX_TOKENS, default=32, help=f"1 to {MAX_NEW_TOKENS}")
    p.add_argument("--n-ctx", type=N_CTX, default=4096, help=N_CTX_HELP)
    p.add_argument("--threads", type=THREADS, default=None, help=THREADS_HELP)
    p.add_argument("--n-gpu-layers", type=GPU_LAYERS, default=0, help=GPU_LAYERS_HELP + ", for each quant")
    p.add_argument("--out", type=output_dir, help="also write comparison.md and comparison.json into this folder")
    p.add_argument("--json", action="store_true")
    _add_server_options(p)
    p.set_defaults(func=cmd_compare)

    p = verbs.add_parser("eval", help="HumanEval-Infilling pass@1 of quants; programs run in a sandbox")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--models", type=Path, nargs="+",
                        help="GGUF files, scored one after another (with --server: also server model names)")
    source.add_argument("--samples", type=Path, help="JSON lines of task_id and completion (no model)")
    source.add_argument("--oracle", action="store_true", help="the canonical solutions: must score 100 %%")
    p.add_argument("--subset", choices=EVAL_SUBSETS, default=None,
                   help="default: random-span-light (for --samples: read from the task ids)")
    chosen = p.add_mutually_exclusive_group()
    chosen.add_argument("--limit", type=int_range(1, MAX_EVAL_PROBLEMS), help="the first N problems")
    chosen.add_argument("--sample", type=int_range(1, MAX_EVAL_PROBLEMS), help="N problems drawn with --seed")
    p.add_argument("--seed", type=SEED, default=None, help=f"for --sample, 0 to {MAX_SEED} (default 0)")
    p.add_argument("--max-tokens", type=MAX_TOKENS, default=128, help=f"1 to {MAX_NEW_TOKENS} (default 128)")
    p.add_argument("--n-ctx", type=N_CTX, default=4096, help=N_CTX_HELP)
    p.add_argument("--threads", type=THREADS, default=None, help=THREADS_HELP)
    p.add_argument("--n-gpu-layers", type=GPU_LAYERS, default=0, help=GPU_LAYERS_HELP + ", for each quant")
    p.add_argument("--timeout", type=finite_float(0.5, 600), default=3.0, help="seconds per program (default 3)")
    p.add_argument("--workers", type=int_range(1, 16), default=2, help="programs run at once (default 2)")
    p.add_argument("--no-bwrap", action="store_true", help="do not use bubblewrap (fewer protections)")
    p.add_argument("--out", type=output_dir, help="run folder (default: one per model under the app's data folder)")
    p.add_argument("--json", action="store_true")
    _add_server_options(p)
    p.set_defaults(func=cmd_eval)

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


VERBS = ("inspect", "complete", "fit", "compare", "eval", "download", "models", "bench")


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
