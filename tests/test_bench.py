"""Smoke test of the benchmark harness: `main.py bench --quick` on the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _latest_stamp() -> int | None:
    latest = ROOT / "bench" / "results" / "latest.json"
    return latest.stat().st_mtime_ns if latest.exists() else None


@pytest.mark.slow
def test_quick_benchmark_writes_json_markdown_and_plots(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    latest_before = _latest_stamp()
    done = subprocess.run(
        [sys.executable, "main.py", "bench", "--quick", "--model", str(tiny_model), "--out", str(out),
         "--n-gpu-layers", "auto"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list(out.glob("bench-*-quick.json"))
    assert len(runs) == 1
    results = json.loads(runs[0].read_text())
    summary = results["summary"]
    from app.cli import _gpu_layers_for
    from app.core.offload import AUTO

    assert results["n_gpu_layers"] == _gpu_layers_for(tiny_model, AUTO, 16384)[0]  # as `complete` decides
    for key in ("machine", "model", "tg_ratio", "pp_ratio", "retype_ttft_ratio", "max_stall_ms", "rss_error_pct",
                "bandwidth_fraction"):
        assert summary[key] is not None, key
    assert set(summary["max_stall_ms"]) == {"load model", "stream completion", "open 5,000-line file"}
    assert 0 < summary["tg_ratio"] < 10 and 0 < summary["pp_ratio"] < 10
    assert summary["bandwidth_fraction"] > 0
    # SPM keeps the cache across a keystroke: far fewer tokens evaluated than cold.
    spm = next(r for r in results["retype"]["runs"] if r["peer"] == "starpad" and r["layout"] == "spm")
    assert spm["evaluated_tokens"]["cold"] > 1900
    assert spm["evaluated_tokens"]["+1 char"] <= 4
    psm = next(r for r in results["retype"]["runs"] if r["peer"] == "starpad" and r["layout"] == "psm")
    # PSM puts the suffix after the caret's change; FAST reuse moves it instead of re-reading it.
    assert psm["evaluated_tokens"]["+1 char"] <= 64
    _check_edit_session(results, summary)
    assert "| Generation speed vs" in (out / "summary.md").read_text()
    assert "## Editing session" in (out / "summary.md").read_text()
    for png in ("overhead.png", "retype.png", "ui_stalls.png", "memory.png", "edit_session.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    # A quick run never touches the committed results.
    assert _latest_stamp() == latest_before


def _check_edit_session(results: dict[str, Any], summary: dict[str, Any]) -> None:
    """The editing session ran through the session and the engine, event by event."""
    from bench.harness import EDIT_SESSION_KEYS

    es = results["edit_session"]
    assert "error" not in es, es.get("traceback")
    assert set(EDIT_SESSION_KEYS) <= set(summary["edit_session"])
    kinds = [row["kind"] for row in es["rows"]]
    for kind in ("open", "type", "click", "jump", "new line + indent", "accept (Tab)", "paste 10 lines", "undo",
                 "switch (first visit)", "switch back"):
        assert kind in kinds, kind
    assert [row["first_in_file"] for row in es["rows"]].count(True) == 2  # decoder.py, then encoder.py
    assert es["first_open_ttft_ms"] > 0 and es["ttft_ms_median"] >= 0 and es["ttft_ms_p90"] >= es["ttft_ms_median"]
    engine_rows = [row for row in es["rows"] if row["served"] == "engine"]
    assert engine_rows and all(row["ttft_ms"] > 0 for row in engine_rows)
    for row in engine_rows:
        assert row["prompt_tokens"] == row["reused_exact"] + row["reused_shifted"] + row["evaluated"]
    # A click a few lines away keeps almost all of a 3,000-token prompt (moved or idle-prefilled).
    click = next(row for row in es["rows"] if row["kind"] == "click")
    assert click["prompt_tokens"] > 2500 and click["evaluated"] <= max(64, click["prompt_tokens"] // 20)
    assert "peer_ttft_ms_median" in es and "peer_ttft_ms_p90" in es
    # The quick run checks the quality code path on the tiny model itself.
    assert es["quality"]["model"] == Path(results["model"]["path"]).name
    for key in ("approx_top1_pct", "control_top1_pct", "approx_identical_pct", "control_identical_pct",
                "worst_approx_top1_pct", "worst_control_top1_pct"):
        assert 0.0 <= es[key] <= 100.0, key
    assert es["worst_event_type"] in kinds


def test_bench_without_a_model_explains_what_to_pass(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "main.py", "bench", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--model" in done.stderr and "Traceback" not in done.stderr


def test_bench_refuses_a_broken_model_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 8)
    done = subprocess.run([sys.executable, "main.py", "bench", "--model", str(bad), "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("bench: ") and "Traceback" not in done.stderr
    assert not list((tmp_path / "out").glob("bench-*.json"))


def test_one_gpu_layer_choice_reaches_the_engines_and_the_peers() -> None:
    from bench import offload

    try:
        offload.use(12)
        assert offload.engine_config(n_ctx=512, n_threads=2).n_gpu_layers == 12
        assert offload.peer_args() == ["-ngl", "12"]
    finally:
        offload.use(0)
    assert offload.engine_config(n_ctx=512).n_gpu_layers == 0 and offload.peer_args() == ["-ngl", "0"]


def test_bench_refuses_a_bad_gpu_layer_count(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "main.py", "bench", "--quick", "--n-gpu-layers", "lots",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "auto, all or a number" in done.stderr
