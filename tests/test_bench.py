"""Smoke test of the benchmark harness: `main.py bench --quick` on the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.remote_servers import require_llama_server

ROOT = Path(__file__).resolve().parents[1]


def _latest_stamp() -> int | None:
    latest = ROOT / "bench" / "results" / "latest.json"
    return latest.stat().st_mtime_ns if latest.exists() else None


@pytest.mark.slow
def test_quick_benchmark_writes_json_markdown_and_plots(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    latest_before = _latest_stamp()
    # The built llama-server (conftest sandboxes the cache folder): the remote run needs it.
    # The llama.vscode peer adds nothing the remote run does not exercise: skipped for time.
    tools = require_llama_server().parents[2]
    done = subprocess.run(
        [sys.executable, "main.py", "bench", "--quick", "--model", str(tiny_model), "--out", str(out),
         "--n-gpu-layers", "auto", "--no-peer"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "STARPAD_TOOLS_CACHE": str(tools)},
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
    assert "### Multi-file run" in (out / "summary.md").read_text()
    assert "### Remote run" in (out / "summary.md").read_text()
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
    assert es["variants"] == ["local", "repo", "remote"]
    _check_repo_context(es["repo_context"])
    _check_remote(es["remote"])
    for name in ("repo_context", "remote"):
        assert summary["edit_session"][name]["ttft_ms_median"] > 0, name


def _rows_by_kind(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The first row of each event kind; the quick run plays a variant through these five."""
    rows: dict[str, dict[str, Any]] = {}
    for row in run["rows"]:
        rows.setdefault(row["kind"], row)
    assert set(rows) == {"open", "type", "click", "switch (first visit)", "switch back"}
    return rows


def _check_repo_context(run: dict[str, Any]) -> None:
    """The multi-file run: decoder.py's block holds the module it imports, encoder.py's the
    other open tab, and a keystroke keeps the block (it stays in the KV cache)."""
    assert "error" not in run, run.get("error")
    for row in run["rows"]:
        if row["served"] == "engine":
            assert row["prompt_tokens"] == row["reused_exact"] + row["reused_shifted"] + row["evaluated"]
    rows = _rows_by_kind(run)
    opened, typed, switched = rows["open"], rows["type"], rows["switch (first visit)"]
    assert "Lib/json/scanner.py" in opened["context_files"]  # `from json import scanner`
    assert 0 < opened["context_tokens"] < opened["prompt_tokens"]
    assert typed["context_files"] == opened["context_files"] and typed["context_tokens"] == opened["context_tokens"]
    assert typed["evaluated"] <= 16 and typed["reused_exact"] >= typed["prompt_tokens"] - 16
    assert "Lib/json/decoder.py" in switched["context_files"]  # the other open tab
    assert switched["context_tokens"] > opened["context_tokens"]
    assert run["ttft_ms_median"] > 0 and run["first_open_ttft_ms"] > 0


def _check_remote(run: dict[str, Any]) -> None:
    """The remote run: Starpad's session on llama-server; after a keystroke the server
    says it reused its cache, and only the new tokens were evaluated."""
    assert "error" not in run, run.get("error")
    assert "-np 1" in run["server_command"]
    engine_rows = [row for row in run["rows"] if row["served"] == "engine"]
    assert engine_rows
    for row in engine_rows:
        assert row["ttft_ms"] > 0
        assert row["prompt_tokens"] == row["reused_exact"] + row["evaluated"]  # the server's cache_n + prompt_n
        assert row["reused_shifted"] == 0 and row["restored"] == 0 and row["context_tokens"] == 0
    typed = _rows_by_kind(run)["type"]
    assert typed["served"] == "engine" and typed["prompt_tokens"] > 2500
    assert 1 <= typed["evaluated"] <= 16 and typed["reused_exact"] >= typed["prompt_tokens"] - 16


def _edit_run(measured: list[str], **values: Any) -> dict[str, Any]:
    rows = [{"index": 0, "kind": "open", "file": "json/decoder.py", "line": 1, "first_in_file": True,
             "served": "engine", "ttft_ms": 10.0}]
    return {"debounce_ms": 250, "keystroke_ms": 150.0, "max_tokens": 8, "measured": measured, "rows": rows,
            **values}


def test_re_measuring_one_variant_keeps_the_others_numbers() -> None:
    from bench.edit_session import merged

    old = _edit_run(["local", "repo", "remote", "peer", "quality"], ttft_ms_median=100.0,
                    peer_ttft_ms_median=400.0, peer_rows=[{"index": 0}], repo_context={"ttft_ms_median": 200.0},
                    remote={"ttft_ms_median": 300.0}, quality={"model": "m"}, approx_top1_pct=90.0)
    new = _edit_run(["repo"], repo_context={"ttft_ms_median": 150.0}, peer_ttft_ms_median=None,
                    peer_error="skipped in this run (--no-peer)", quality={"skipped": "skipped"},
                    approx_top1_pct=None)
    del new["rows"]  # the local run did not run
    result = merged(old, new)
    assert result["repo_context"] == {"ttft_ms_median": 150.0}
    assert result["remote"] == {"ttft_ms_median": 300.0}
    assert result["ttft_ms_median"] == 100.0 and result["rows"] == old["rows"]
    assert result["peer_ttft_ms_median"] == 400.0 and "peer_error" not in result
    assert result["quality"] == {"model": "m"} and result["approx_top1_pct"] == 90.0
    assert result["ratio_median"] == pytest.approx(0.25)
    assert result["measured"] == ["local", "repo", "remote", "peer", "quality"]
    # A run that failed as a whole, or a first run, replaces nothing but itself.
    assert merged(None, new) is new and merged({"error": "x"}, new) is new


def test_variants_are_parsed_and_a_wrong_one_is_named() -> None:
    from bench.edit_session import Variant, parse_variants

    assert parse_variants("repo, remote,repo") == (Variant.REPO, Variant.REMOTE)
    with pytest.raises(ValueError, match="'cloud'.*local, repo, remote"):
        parse_variants("local,cloud")
    with pytest.raises(ValueError, match="no variant"):
        parse_variants(" , ")


def test_bench_refuses_an_unknown_variant_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "main.py", "bench", "--quick", "--only", "edit_session",
                           "--variants", "local,cloud", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown variant 'cloud'" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("bench-*.json"))


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
