"""The fit estimator: formula, verdicts that follow memory, recommendation by context."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.core.catalog import STARCODER2_3B, builtin_catalog
from app.core.memory_fit import MemoryInfo, estimate, fit_report

GB = 10**9
ROOT = Path(__file__).resolve().parents[2]


def test_kv_cache_formula_matches_the_issue() -> None:
    # n_layer x n_ctx x n_head_kv x head_dim x 2 x 2 bytes: about 480 MiB for 3B at 16K.
    need = estimate(1_890_000_000, STARCODER2_3B, 16384)
    assert need.kv_bytes == 30 * 16384 * 2 * 128 * 2 * 2
    assert round(need.kv_bytes / 2**20) == 480


def test_estimate_matches_the_calibration_measurements() -> None:
    """RSS measured on the generated 3B-shaped Q4_K_M (bench/results/memory-calibration.json)."""
    measured = {(4096, False): 2.10e9, (16384, False): 2.48e9, (4096, True): 3.38e9, (16384, True): 3.76e9}
    for (n_ctx, mmap), rss in measured.items():
        need = estimate(1_887_550_656, STARCODER2_3B, n_ctx, use_mmap=mmap, overhead_bytes=50_000_000)
        assert abs(need.total_bytes - rss) / rss < 0.10, (n_ctx, mmap, need.total_bytes)


def test_mmap_pages_are_reclaimable_and_no_mmap_holds_weights_once() -> None:
    mmap = estimate(1_890_000_000, STARCODER2_3B, 4096, use_mmap=True)
    plain = estimate(1_890_000_000, STARCODER2_3B, 4096, use_mmap=False)
    assert mmap.reclaimable_bytes == 1_890_000_000 and plain.reclaimable_bytes == 0
    assert mmap.total_bytes > plain.total_bytes
    assert mmap.required_bytes < mmap.total_bytes


def test_verdicts_follow_the_memory() -> None:
    entries = [e for e in builtin_catalog() if e.family == "StarCoder2 3B"]
    big = fit_report(entries, MemoryInfo(64 * GB, 60 * GB), 16384)
    small = fit_report(entries, MemoryInfo(4 * GB, 3 * GB), 16384)
    assert all(row.verdict == "fits" for row in big.rows)
    verdicts = {row.entry.quant: row.verdict for row in small.rows}
    assert verdicts["F16"] == "too_large" and verdicts["Q8_0"] == "too_large"
    assert verdicts["Q4_K_M"] == "tight" and verdicts["Q2_K"] == "fits"
    assert big.recommended is not None and big.recommended.quant == "Q8_0"  # never F16
    # With 3 GB free at 16K context the best that fits comfortably is Q3_K_L.
    assert small.recommended is not None and small.recommended.quant == "Q3_K_L"


def test_recommendation_changes_with_context() -> None:
    memory = MemoryInfo(16 * GB, 11 * GB)
    short = fit_report(builtin_catalog(), memory, 4096).recommended
    long = fit_report(builtin_catalog(), memory, 16384).recommended
    assert short is not None and long is not None
    # The 16K KV cache of the 7B (1 GB more than at 4K) pushes the pick down a quant.
    assert (short.family, short.quant) == ("StarCoder2 7B", "Q8_0")
    assert (long.family, long.quant) == ("StarCoder2 7B", "Q6_K")


def test_fit_cli_json() -> None:
    # A fixed amount of RAM: the answer must not depend on the machine running the test.
    # --no-speed: memory only (tests/core/test_speed.py covers the speed-aware recommendation).
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "fit", "--ctx", "8192", "--ram-gb", "16", "--json",
                           "--no-speed"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["ram_total_bytes"] > 0 and data["n_ctx"] == 8192
    row = data["quants"][0]
    assert set(row) >= {"file_bytes", "need_bytes", "verdict"}
    assert {r["verdict"] for r in data["quants"]} <= {"fits", "tight", "too_large"}
    # The recommendation is one of the rows that fit, named as repo/file.
    assert data["recommended"] in {f"{r['repo']}/{r['file']}" for r in data["quants"] if r["verdict"] == "fits"}
    # Without a machine check there is nothing to predict, and the reason says so.
    assert {r["predicted_gen_tps"] for r in data["quants"]} == {None}
    assert "speed not checked" in data["recommendation_reason"]
