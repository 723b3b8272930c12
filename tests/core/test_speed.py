"""Speed predictions, the usable-speed recommendation, the machine check's cache, and the
GPU-layers decision (fake device inventories) down to llama.cpp's model parameters.

Machine-check numbers are injected: no assertion depends on how fast this machine is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.core import engine as engine_module
from app.core.catalog import STARCODER2_3B, builtin_catalog
from app.core.engine import Engine, EngineConfig
from app.core.machine_check import (
    KernelRate,
    MachineSpeed,
    load_cached,
    machine_key,
    measure_kernels,
    mini_matmul_params,
    save_cached,
)
from app.core.memory_fit import GpuMemory, MemoryInfo, estimate, fit_report, offload_for_model
from app.core.model_info import model_info
from app.core.offload import ALL, AUTO, GpuDevice, parse_gpu_layers, plan_offload
from app.core.speed import GEN_EFFICIENCY, SpeedTarget, predict, prompt_params

GB = 10**9
ROOT = Path(__file__).resolve().parents[2]


def two_core_machine() -> MachineSpeed:
    """Numbers like the 2-core EPYC's: ~20 GB/s, Q4_K_M prompts at ~29 tok/s on the 3B."""
    p3b = prompt_params(STARCODER2_3B)
    rates = {"F16": 60.0, "Q8_0": 95.0, "Q6_K": 25.0, "Q5_K_M": 24.0, "Q5_0": 28.0, "Q4_K_M": 29.0,
             "Q4_0": 125.0, "Q3_K_M": 40.0, "Q2_K": 45.0}  # 3B prompt tok/s per kernel
    kernels = {q: KernelRate(prompt_param_tps=tps * p3b, gen_param_tps=1e12) for q, tps in rates.items()}
    return MachineSpeed(bandwidth_bytes_per_s=20e9, threads=2, kernels=kernels, cpu="test CPU", cores=2)


def test_generation_follows_bandwidth_and_prompt_follows_the_kernels() -> None:
    speed = two_core_machine()
    pred = predict(1_890_000_000, STARCODER2_3B, "Q4_K_M", speed, n_ctx=1024)
    bytes_per_token = 1_890_000_000 + STARCODER2_3B.kv_bytes_per_token() * 1024
    assert pred.gen_tps == pytest.approx(GEN_EFFICIENCY * 20e9 / bytes_per_token)
    assert pred.prompt_tps == pytest.approx(29.0)
    assert pred.prompt_seconds(1024) == pytest.approx(1024 / 29.0)
    assert pred.summary() == "≈ 9.9 tok/s · 1K-token prompt ≈ 35 s"
    # Twice the bandwidth, twice the generation; the prompt is compute-bound and stays.
    fast = predict(1_890_000_000, STARCODER2_3B, "Q4_K_M",
                   MachineSpeed(40e9, 2, speed.kernels), n_ctx=1024)
    assert fast.gen_tps == pytest.approx(2 * pred.gen_tps) and fast.prompt_tps == pytest.approx(pred.prompt_tps)
    # An unmeasured mix borrows its sibling's kernels and says so.
    sibling = predict(1_730_000_000, STARCODER2_3B, "Q4_K_S", speed)
    assert sibling.prompt_tps == pytest.approx(29.0) and not sibling.kernel_measured


def test_recommendation_is_the_best_quality_that_is_usable_and_says_why() -> None:
    report = fit_report(builtin_catalog(), MemoryInfo(24 * GB, 22 * GB), 4096, speed=two_core_machine())
    memory_only = fit_report(builtin_catalog(), MemoryInfo(24 * GB, 22 * GB), 4096)
    assert memory_only.recommended is not None and memory_only.recommended.family == "StarCoder2 15B"
    rec = report.recommended
    assert rec is not None and (rec.family, rec.quant) == ("StarCoder2 3B", "Q4_0")
    row = next(r for r in report.rows if r.entry == rec)
    assert row.meets_target and row.speed is not None and row.speed.gen_tps >= 8
    assert "15B Q8_0 fits, but would generate ≈ 1.1 tok/s here" in report.reason
    data = report.to_json()
    assert data["recommendation_reason"] == report.reason
    quants = data["quants"]
    assert isinstance(quants, list)
    first = quants[0]
    assert {"predicted_gen_tps", "predicted_prompt_tps", "meets_speed_target"} <= set(first)


def test_when_nothing_is_usable_the_fastest_that_fits_is_recommended_plainly() -> None:
    slow = MachineSpeed(5e9, 2, two_core_machine().kernels)
    report = fit_report(builtin_catalog(), MemoryInfo(24 * GB, 22 * GB), 4096, speed=slow)
    assert report.recommended is not None and (report.recommended.family, report.recommended.quant) == (
        "StarCoder2 3B", "Q2_K")
    assert report.reason.startswith("No quant that fits meets the target")
    assert "expect ≈ 3.7 tok/s" in report.reason
    # A looser target (editable in the preferences) makes a better quant usable again.
    loose = fit_report(builtin_catalog(), MemoryInfo(24 * GB, 22 * GB), 4096, speed=slow,
                       target=SpeedTarget(min_gen_tps=1.0, max_prompt_seconds=120.0))
    assert loose.recommended is not None
    assert (loose.recommended.family, loose.recommended.quant) == ("StarCoder2 7B", "Q4_K_M")


def test_machine_check_cache_is_keyed_per_machine(tmp_path: Path) -> None:
    cache = tmp_path / "machine-speed.json"
    speed = two_core_machine()
    assert load_cached(2, cache) is None
    save_cached(speed, cache)
    again = load_cached(2, cache)
    assert again is not None and again.kernels == speed.kernels and again.bandwidth_bytes_per_s == 20e9
    assert load_cached(3, cache) is None  # another thread count is another measurement
    assert machine_key(2) in json.loads(cache.read_text())
    cache.write_text("{not json")
    assert load_cached(2, cache) is None  # corrupt: measured again, never a crash


def test_machine_check_times_a_real_quant(tmp_path: Path) -> None:
    """The mini model is written, quantized by llama.cpp and run: rates come out positive."""
    rates = measure_kernels(["Q8_0"], 1, tmp_path)
    assert set(rates) == {"Q8_0"}
    assert rates["Q8_0"].prompt_param_tps > 0 and rates["Q8_0"].gen_param_tps > 0
    assert mini_matmul_params() > 10_000_000
    assert not list(tmp_path.glob("check-Q8_0*"))  # quantized files are removed as it goes


# ---------------------------------------------------------------- GPU layers
def test_gpu_layers_setting_parses() -> None:
    assert parse_gpu_layers("auto") == AUTO and parse_gpu_layers("ALL") == ALL and parse_gpu_layers(" 12 ") == 12
    for bad in ("-2", "1000", "many", ""):
        with pytest.raises(ValueError, match="auto, all or a number"):
            parse_gpu_layers(bad)


def test_auto_offload_fills_free_vram_layer_by_layer() -> None:
    q4 = 1_890_000_000
    big = plan_offload(AUTO, q4, STARCODER2_3B, 16384, (GpuDevice("RTX", 12 * GB, 12 * GB),), gpu_backend=True)
    assert big.n_gpu_layers == 31 and big.placement() == "GPU 30/30 layers"  # 30 blocks + output
    small = plan_offload(AUTO, q4, STARCODER2_3B, 16384, (GpuDevice("small", 1_500_000_000),), gpu_backend=True)
    assert 0 < small.n_gpu_layers < 30 and small.placement() == f"GPU {small.n_gpu_layers}/30 layers"
    # The bigger of two GPUs is used.
    pair = plan_offload(AUTO, q4, STARCODER2_3B, 16384,
                        (GpuDevice("tiny", 100_000_000), GpuDevice("RTX", 12 * GB)), gpu_backend=True)
    assert pair.device == "RTX"
    # No GPU backend in this llama.cpp, no GPU, or too little memory: the CPU, with the reason.
    assert plan_offload(AUTO, q4, STARCODER2_3B, 16384, (GpuDevice("RTX", 12 * GB),), False).placement() == "CPU"
    assert plan_offload(AUTO, q4, STARCODER2_3B, 16384, (), True).reason == "no GPU found"
    assert plan_offload(AUTO, q4, STARCODER2_3B, 16384, (GpuDevice("x", 500_000_000),), True).n_gpu_layers == 0
    # An explicit count is honoured, capped at every layer + output.
    assert plan_offload(12, q4, STARCODER2_3B, 16384, (GpuDevice("RTX", 12 * GB),), True).n_gpu_layers == 12
    assert plan_offload(ALL, q4, STARCODER2_3B, 16384, (GpuDevice("RTX", 12 * GB),), True).n_gpu_layers == 31


def test_estimate_splits_weights_and_kv_between_gpu_and_ram() -> None:
    q4 = 1_890_000_000
    plan = plan_offload(15, q4, STARCODER2_3B, 16384, (GpuDevice("RTX", 12 * GB),), True)
    cpu = estimate(q4, STARCODER2_3B, 16384)
    split = estimate(q4, STARCODER2_3B, 16384, offload=plan)
    assert split.gpu_kv_bytes == cpu.kv_bytes // 2  # half the layers, half the cache
    assert 0.45 * q4 < split.gpu_weights_bytes < 0.5 * q4
    assert split.total_bytes == cpu.total_bytes - split.gpu_bytes
    # The verdict judges the GPU part against the GPU's free memory.
    memory = MemoryInfo(64 * GB, 60 * GB, (GpuMemory("RTX", 12 * GB, 12 * GB),))
    report = fit_report([e for e in builtin_catalog() if e.family == "StarCoder2 15B"], memory, 16384,
                        n_gpu_layers=ALL, gpu_backend=True)
    verdicts = {r.entry.quant: r.verdict for r in report.rows}
    assert verdicts["F16"] == "too_large" and verdicts["Q2_K"] == "fits"
    data = report.to_json()
    assert isinstance(data["quants"], list) and data["quants"][-1]["runs_on"] == "GPU 40/40 layers"


class _SpyModel:
    """Records the parameters the engine hands llama.cpp, then loads for real."""

    seen: list[int] = []

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        cls.seen.append(int(kwargs["params"].n_gpu_layers))
        return _REAL_MODEL(*args, **kwargs)


_REAL_MODEL = engine_module._internals.LlamaModel


def test_chosen_gpu_layers_reach_llama_cpp_model_params(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module._internals, "LlamaModel", _SpyModel)
    _SpyModel.seen = []
    info = model_info(tiny_model)
    fake = MemoryInfo(8 * GB, 6 * GB, (GpuMemory("Fake GPU", 8 * GB, 8 * GB),))
    plan = offload_for_model(AUTO, info, 2048, memory=fake, gpu_backend=True)
    assert plan.on_gpu and plan.n_gpu_layers == info.n_layer + 1
    engine = Engine()
    try:
        engine.load(tiny_model, EngineConfig(n_ctx=2048, n_gpu_layers=plan.n_gpu_layers))
        engine.load(tiny_model, EngineConfig(n_ctx=2048, n_gpu_layers=0))
    finally:
        engine.close()
    assert _SpyModel.seen == [info.n_layer + 1, 0]


def test_fit_cli_reports_speed_and_reason(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    save_cached(two_core_machine(), cache / "starpad" / "machine-speed.json")
    env = {"XDG_CACHE_HOME": str(cache), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "fit", "--ram-gb", "22", "--ctx", "4096",
                           "--threads", "2", "--json"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["recommended"].endswith("starcoder2-3b-Q4_0.gguf")
    assert "15B Q8_0 fits, but would generate" in data["recommendation_reason"]
    row = next(r for r in data["quants"] if r["quant"] == "Q4_0" and r["family"] == "StarCoder2 3B")
    assert row["meets_speed_target"] is True and row["predicted_gen_tps"] >= 8
    bad = subprocess.run([sys.executable, str(ROOT / "main.py"), "fit", "--n-gpu-layers", "lots"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 2 and "auto, all or a number of layers" in bad.stderr
