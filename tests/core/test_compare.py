"""Quant comparison on real quantizations of the generated model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.compare import CompareSettings, compare_models
from app.core.engine import CancelToken
from app.core.errors import CancelledError

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\nprint(add(1, 2))\n"


def test_compare_three_quants(quantized_models: dict[str, Path], tmp_path: Path) -> None:
    models = [quantized_models["Q4_0"], quantized_models["F16"], quantized_models["Q8_0"]]
    stages: list[str] = []
    report = compare_models(models, PREFIX, SUFFIX, CompareSettings(max_tokens=16, n_ctx=2048, threads=2),
                            on_stage=lambda i, name, what: stages.append(what))
    by_quant = {r.quant: r for r in report.results}
    assert [r.model for r in report.results] == [str(m) for m in models]  # the caller's order
    assert report.reference == str(quantized_models["F16"])  # highest precision
    # The reference scored against its own completion: teacher-forcing computes the logits in
    # one batch where generation computed them one token at a time, so kernels may break a
    # near-tie the other way (README, "Determinism"): agreement with a tolerance, not 1.0 exactly.
    assert by_quant["F16"].agreement >= 0.9
    assert by_quant["F16"].file_bytes > by_quant["Q8_0"].file_bytes > by_quant["Q4_0"].file_bytes
    for r in report.results:
        assert 0.0 <= r.agreement <= 1.0
        assert 1.0 < r.perplexity < 49152 * 4  # a random model is near-uniform over 49,152 tokens
        assert r.gen_tps > 0 and r.prompt_tps > 0 and r.ttft_ms > 0 and r.load_s > 0
        assert r.peak_rss_bytes > 10_000_000
        assert len(r.tokens) > 0
    assert by_quant["Q4_0"].agreement < 1.0  # 4-bit changes some top-1 choices of this model
    assert stages[:4] == ["loading", "warming up", "completing", "scoring"]
    md, js = report.write(tmp_path)
    data = json.loads(js.read_text())
    assert data["reference"] == report.reference and len(data["results"]) == 3
    assert set(data["results"][0]) >= {"model", "file_bytes", "load_s", "peak_rss_bytes", "ttft_ms", "prompt_tps",
                                       "gen_tps", "text", "agreement", "perplexity"}
    assert "| Q4_0 |" in md.read_text() and "| Agreement |" in md.read_text()


def test_reference_is_the_most_bits_per_weight(quantized_models: dict[str, Path]) -> None:
    from app.core.compare import precision_rank
    from app.core.model_info import model_info

    ranks = {q: precision_rank(model_info(p)) for q, p in quantized_models.items()}
    assert ranks["F16"] > ranks["Q8_0"] > ranks["Q4_0"]


def test_cancel_stops_the_comparison(quantized_models: dict[str, Path]) -> None:
    cancel = CancelToken()

    def on_stage(index: int, _name: str, what: str) -> None:
        if index == 1 and what == "loading":
            cancel.cancel()

    with pytest.raises(CancelledError):
        compare_models([quantized_models["F16"], quantized_models["Q4_0"]], PREFIX, SUFFIX,
                       CompareSettings(max_tokens=8, n_ctx=1024), on_stage=on_stage, cancel=cancel)


def test_needs_two_to_four_models(quantized_models: dict[str, Path]) -> None:
    with pytest.raises(ValueError):
        compare_models([quantized_models["F16"]], PREFIX, SUFFIX)


def test_compare_cli_json(quantized_models: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text(PREFIX)
    (tmp_path / "s.txt").write_text(SUFFIX)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "compare", "--models", str(quantized_models["Q8_0"]),
         str(quantized_models["Q4_0"]), "--prefix-file", str(tmp_path / "p.txt"), "--suffix-file",
         str(tmp_path / "s.txt"), "--max-tokens", "8", "--n-ctx", "1024", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["reference"] == str(quantized_models["Q8_0"])
    assert {r["model"] for r in data["results"]} == {str(quantized_models["Q8_0"]), str(quantized_models["Q4_0"])}
    one = subprocess.run([sys.executable, str(ROOT / "main.py"), "compare", "--models", str(quantized_models["Q8_0"]),
                          "--prefix-file", str(tmp_path / "p.txt")], capture_output=True, text=True, timeout=60)
    assert one.returncode == 2 and "2 to 4" in one.stderr
