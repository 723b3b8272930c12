"""Measure llama.cpp's real memory use against the fit estimator's prediction.

Each configuration loads the model in a fresh process (so page cache and allocator
state from one run cannot flatter the next), runs one short prompt so the compute
buffers are touched, and reports RSS split into anonymous and file-backed memory.

    python -m bench.memory_calibration MODEL.gguf [--ctx 4096 16384] [--mmap] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from bench import offload
from typing import Any
from pathlib import Path


def _proc_status() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def measure_in_this_process(model: str, n_ctx: int, use_mmap: bool) -> dict[str, Any]:
    import time

    from app.core.engine import CompletionRequest, Engine

    baseline = _proc_status()
    engine = Engine()
    started = time.perf_counter()
    engine.load(model, offload.engine_config(n_ctx=n_ctx, use_mmap=use_mmap))
    load_s = time.perf_counter() - started
    engine.complete(CompletionRequest(prefix="def hello():\n    ", max_tokens=2))
    after = _proc_status()
    return {"n_ctx": n_ctx, "use_mmap": use_mmap, "load_s": round(load_s, 2), "baseline": baseline, "loaded": after}


def predict(model: str, n_ctx: int, use_mmap: bool, baseline: int) -> dict[str, int]:
    from app.core.catalog import ArchShape
    from app.core.memory_fit import estimate
    from app.core.model_info import model_info

    info = model_info(model)
    shape = ArchShape(info.n_params, info.n_layer, info.n_embd, info.n_head, info.n_head_kv, info.n_vocab)
    need = estimate(info.size_bytes, shape, n_ctx, use_mmap, overhead_bytes=baseline)
    return {"total": need.total_bytes, "reclaimable": need.reclaimable_bytes, "kv": need.kv_bytes}


def calibrate(model: str, n_ctx: int, use_mmap: bool) -> dict[str, Any]:
    """Load ``model`` in a fresh process and compare its RSS with the estimator.

    Two predictions: with the measured RSS before loading as the base (what llama.cpp
    adds, the estimator's own model) and with the fixed runtime overhead the model dialog
    assumes for the whole app.
    """
    out = subprocess.run(
        [sys.executable, "-m", "bench.memory_calibration", model, "--child", str(n_ctx), "1" if use_mmap else "0"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    run = json.loads(out.strip().splitlines()[-1])
    rss = run["loaded"]["VmRSS"]
    run["predicted"] = predict(model, n_ctx, use_mmap, run["baseline"]["VmRSS"])
    run["error_pct"] = round((run["predicted"]["total"] - rss) / rss * 100, 1)
    from app.core.memory_fit import RUNTIME_OVERHEAD_BYTES

    run["predicted_app"] = predict(model, n_ctx, use_mmap, RUNTIME_OVERHEAD_BYTES)
    run["error_pct_app"] = round((run["predicted_app"]["total"] - rss) / rss * 100, 1)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--ctx", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--mmap", action="store_true", help="also measure use_mmap=True")
    parser.add_argument("--child", nargs=2, metavar=("CTX", "MMAP"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure_in_this_process(args.model, int(args.child[0]), args.child[1] == "1")))
        return 0
    runs = []
    configs = [(ctx, False) for ctx in args.ctx] + ([(ctx, True) for ctx in args.ctx] if args.mmap else [])
    for ctx, mmap in configs:
        run = calibrate(args.model, ctx, mmap)
        runs.append(run)
        rss = run["loaded"]["VmRSS"]
        print(
            f"ctx={ctx:>6} mmap={mmap!s:<5} load {run['load_s']:>5.1f} s  RSS {rss / 1e9:.2f} GB "
            f"(anon {run['loaded']['RssAnon'] / 1e9:.2f}, file {run['loaded']['RssFile'] / 1e9:.2f}, "
            f"before load {run['baseline']['VmRSS'] / 1e9:.2f})  predicted {run['predicted']['total'] / 1e9:.2f} GB "
            f"→ error {run['error_pct']:+.1f} %"
        )
    if args.out:
        args.out.write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
