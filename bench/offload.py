"""``main.py bench --n-gpu-layers``: one choice for every engine and peer a run starts.

A benchmark compares Starpad with llama.cpp's own tools on the same hardware, so the
layers offloaded must be the same on both sides: the engines the scenarios load get
``engine_config(...)`` and the peers' command lines get ``peer_args()``. The value is set
once per run (``use``) from the CLI, resolved against the model like ``complete`` does
(auto: as many layers as the estimate fits in free VRAM; a CPU-only build: 0).
"""

from __future__ import annotations

from typing import Any

from app.core.engine import EngineConfig

_gpu_layers = 0


def use(n_gpu_layers: int) -> None:
    """The resolved layer count for this run (0: the CPU only)."""
    global _gpu_layers
    _gpu_layers = max(0, n_gpu_layers)


def gpu_layers() -> int:
    return _gpu_layers


def engine_config(**kwargs: Any) -> EngineConfig:
    """An ``EngineConfig`` with this run's GPU layers."""
    return EngineConfig(n_gpu_layers=_gpu_layers, **kwargs)


def peer_args() -> list[str]:
    """llama-bench's and llama-server's flag for the same offload."""
    return ["-ngl", str(_gpu_layers)]
