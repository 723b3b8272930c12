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
    check_gen_params,
    check_prompt_params,
    load_cached,
    machine_key,
    measure_kernels,
    save_cached,
)
from app.core.memory_fit import GpuMemory, MemoryInfo, estimate, fit_report, offload_for_model
from app.core.model_info import model_info
from app.core.offload import ALL, AUTO, GpuDevice, parse_gpu_layers, plan_offload
from app.core.speed import QUANT_MIX, SpeedTarget, predict, prompt_params

GB = 10**9
ROOT = Path(__file__).resolve().parents[2]


#: One check on the 2-core EPYC (app.core.machine_check), in G weights·tokens/s per tensor type.
PROMPT_RATES = {"F16": 67.3, "Q8_0": 49.1, "Q6_K": 59.4, "Q5_K": 74.7, "Q5_0": 34.4, "Q4_K": 52.0,
                "Q4_0": 55.6, "Q3_K": 73.5, "Q2_K": 60.5}
GEN_RATES = {"F16": 11.0, "Q8_0": 19.8, "Q6_K": 21.7, "Q5_K": 24.4, "Q5_0": 18.9, "Q4_K": 28.6,
             "Q4_0": 29.9, "Q3_K": 33.4, "Q2_K": 37.5}


def machine(scale: float = 1.0, bandwidth: float = 26e9) -> MachineSpeed:
    """The 2-core EPYC's check, every kernel ``scale`` times as fast."""
    kernels = {t: KernelRate(PROMPT_RATES[t] * 1e9 * scale, GEN_RATES[t] * 1e9 * scale) for t in PROMPT_RATES}
    return MachineSpeed(bandwidth_bytes_per_s=bandwidth, threads=2, kernels=kernels, cpu="test CPU", cores=2)


def two_core_machine() -> MachineSpeed:
    return machine()


def test_prediction_weighs_the_quant_mix_of_timed_tensor_types() -> None:
    speed = two_core_machine()
    pred = predict(1_890_000_000, STARCODER2_3B, "Q4_K_M", speed, n_ctx=1024)
    # Q4_K_M is 81 % Q4_K and 19 % Q6_K by prompt weights, 77 % / 23 % with the output.
    p3b = prompt_params(STARCODER2_3B)
    prompt_seconds = p3b * (0.813 / 52.0e9 + 0.187 / 59.4e9)
    assert pred.prompt_tps == pytest.approx(1 / prompt_seconds)
    kv_seconds = STARCODER2_3B.kv_bytes_per_token() * 1024 / 26e9
    gen_seconds = STARCODER2_3B.n_params * (0.772 / 28.6e9 + 0.228 / 21.7e9) + kv_seconds
    assert pred.gen_tps == pytest.approx(1 / gen_seconds)
    assert pred.kernel_measured
    assert pred.summary() == "≈ 8.7 tok/s · 1K-token prompt ≈ 55 s"
    # Twice as fast kernels, twice as fast prompts; generation nearly (the KV reads stay).
    fast = predict(1_890_000_000, STARCODER2_3B, "Q4_K_M", machine(2.0), n_ctx=1024)
    assert fast.prompt_tps == pytest.approx(2 * pred.prompt_tps)
    assert 1.9 * pred.gen_tps < fast.gen_tps < 2 * pred.gen_tps
    # Smaller is not always faster: Q3_K_M's K-quants cost more to unpack than Q4_K_M's per weight.
    q3 = predict(1_560_000_000, STARCODER2_3B, "Q3_K_M", speed, n_ctx=1024)
    assert q3.gen_tps < pred.gen_tps * 1_890_000_000 / 1_560_000_000


def test_every_catalog_quant_has_a_mix_and_untimed_types_fall_back_to_bandwidth() -> None:
    for entry in builtin_catalog():
        mix = QUANT_MIX[entry.quant]
        assert sum(mix.prompt.values()) == pytest.approx(1.0, abs=0.002)
        assert sum(mix.gen.values()) == pytest.approx(1.0, abs=0.002)
    older = MachineSpeed(26e9, 2, {"Q8_0": machine().kernels["Q8_0"]})  # a check that timed one type
    pred = predict(1_890_000_000, STARCODER2_3B, "Q4_K_M", older, n_ctx=1024)
    assert not pred.kernel_measured and pred.prompt_tps == 0.0
    bytes_per_token = 1_890_000_000 + STARCODER2_3B.kv_bytes_per_token() * 1024
    assert pred.gen_tps == pytest.approx(26e9 / bytes_per_token)
    assert pred.summary().endswith("prompt ≈ —")


def test_recommendation_is_the_best_quality_that_is_usable_and_says_why() -> None:
    four_cores = machine(2.0, 40e9)
    report = fit_report(builtin_catalog(), MemoryInfo(24 * GB, 22 * GB), 4096, speed=four_cores)
    memory_only = fit_report(builtin_catalog(), MemoryInfo(24 * GB, 22 * GB), 4096)
    assert memory_only.recommended is not None and memory_only.recommended.family == "StarCoder2 15B"
    rec = report.recommended
    assert rec is not None and (rec.family, rec.quant) == ("StarCoder2 3B", "Q6_K")
    row = next(r for r in report.rows if r.entry == rec)
    assert row.meets_target and row.speed is not None and row.speed.gen_tps >= 8
    assert "15B Q8_0 fits, but would generate ≈ 2.5 tok/s here" in report.reason
    data = report.to_json()
    assert data["recommendation_reason"] == report.reason
    quants = data["quants"]
    assert isinstance(quants, list)
    first = quants[0]
    assert {"predicted_gen_tps", "predicted_prompt_tps", "meets_speed_target"} <= set(first)


def test_when_nothing_is_usable_the_fastest_that_fits_is_recommended_plainly() -> None:
    # The 2-core EPYC itself: no quant reads a 1,024-token prompt in 30 s (≈ 20 tok/s everywhere).
    report = fit_report(builtin_catalog(), MemoryInfo(24 * GB, 22 * GB), 4096, speed=two_core_machine())
    assert report.recommended is not None and (report.recommended.family, report.recommended.quant) == (
        "StarCoder2 3B", "Q2_K")
    assert report.reason.startswith("No quant that fits meets the target")
    assert "expect ≈ 11 tok/s, a 1,024-token prompt in ≈ 45 s" in report.reason
    # A looser target (editable in the preferences) makes a better quant usable again.
    slow = machine(0.4, 10e9)
    loose = fit_report(builtin_catalog(), MemoryInfo(24 * GB, 22 * GB), 4096, speed=slow,
                       target=SpeedTarget(min_gen_tps=1.0, max_prompt_seconds=120.0))
    assert loose.recommended is not None
    assert (loose.recommended.family, loose.recommended.quant) == ("StarCoder2 3B", "Q5_K_M")


def test_machine_check_cache_is_keyed_per_machine(tmp_path: Path) -> None:
    cache = tmp_path / "machine-speed.json"
    speed = two_core_machine()
    assert load_cached(2, cache) is None
    save_cached(speed, cache)
    again = load_cached(2, cache)
    assert again is not None and again.kernels == speed.kernels and again.bandwidth_bytes_per_s == 26e9
    assert load_cached(3, cache) is None  # another thread count is another measurement
    assert machine_key(2) in json.loads(cache.read_text())
    cache.write_text("{not json")
    assert load_cached(2, cache) is None  # corrupt: measured again, never a crash


def test_machine_check_times_real_tensor_types(tmp_path: Path) -> None:
    """Check models are written as random blocks of each type and run by llama.cpp for real."""
    rates = measure_kernels(["Q8_0", "Q4_K", "NOT_A_TYPE"], 1, tmp_path, rounds=1)
    assert set(rates) == {"Q8_0", "Q4_K"}  # an unknown type is skipped, the check goes on
    assert all(r.prompt_param_tps > 0 and r.gen_param_tps > 0 for r in rates.values())
    # Two real-width layers, the last one's FFN running for one token only.
    assert check_gen_params() > 180_000_000
    assert check_prompt_params() < check_gen_params() * 0.65
    assert not list(tmp_path.glob("check-*"))  # files are removed as it goes


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
    save_cached(machine(2.0, 40e9), cache / "starpad" / "machine-speed.json")
    env = {"XDG_CACHE_HOME": str(cache), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "fit", "--ram-gb", "22", "--ctx", "4096",
                           "--threads", "2", "--json"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["recommended"].endswith("starcoder2-3b-Q6_K.gguf")
    assert "15B Q8_0 fits, but would generate" in data["recommendation_reason"]
    row = next(r for r in data["quants"] if r["quant"] == "Q6_K" and r["family"] == "StarCoder2 3B")
    assert row["meets_speed_target"] is True and row["predicted_gen_tps"] >= 8
    bad = subprocess.run([sys.executable, str(ROOT / "main.py"), "fit", "--n-gpu-layers", "lots"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 2 and "auto, all or a number of layers" in bad.stderr


def test_compare_and_eval_load_each_quant_with_the_chosen_gpu_layers(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--n-gpu-layers on compare and eval: auto is decided per quant and reaches llama.cpp."""
    import shutil

    from app.core import memory_fit
    from app.core.compare import CompareSettings, compare_models
    from app.core.evaluation.dataset import Selection
    from app.core.evaluation.runner import EvalSettings, evaluate_models

    monkeypatch.setattr(engine_module._internals, "LlamaModel", _SpyModel)
    monkeypatch.setattr(memory_fit, "detect_memory",
                        lambda: MemoryInfo(8 * GB, 6 * GB, (GpuMemory("Fake GPU", 8 * GB, 8 * GB),)))
    monkeypatch.setattr(memory_fit, "gpu_backend_available", lambda: True)
    other = tmp_path / "copy.gguf"
    shutil.copyfile(tiny_model, other)
    every_layer = model_info(tiny_model).n_layer + 1
    _SpyModel.seen = []
    compare_models([tiny_model, other], "def f(x):\n    return ", "\n", CompareSettings(max_tokens=2, n_ctx=512,
                                                                                       n_gpu_layers=AUTO))
    assert _SpyModel.seen == [every_layer, every_layer]
    _SpyModel.seen = []
    evaluate_models([tiny_model], EvalSettings(selection=Selection(limit=1), max_tokens=2, n_ctx=512,
                                               n_gpu_layers=3), out=tmp_path / "run")
    assert _SpyModel.seen == [3]
