"""Shared fixtures: the generated StarCoder2 test model and a loaded engine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from app.core.engine import Engine

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
# Settings, recovery files and model folders of the test run stay out of the user's home.
_SANDBOX = Path(__import__("tempfile").mkdtemp(prefix="starpad-tests-"))
os.environ["XDG_CONFIG_HOME"] = str(_SANDBOX / "config")
os.environ["XDG_DATA_HOME"] = str(_SANDBOX / "data")
os.environ["XDG_CACHE_HOME"] = str(_SANDBOX / "cache")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer StarCoder2 GGUF with random weights and StarCoder2's real tokenizer (8.2 MB, F16)."""
    from bench.synthetic_model import TINY, write_model

    return write_model(tmp_path_factory.mktemp("models") / "starcoder2-tiny-F16.gguf", TINY)


@pytest.fixture()
def engine(tiny_model: Path) -> Iterator[Engine]:
    from app.core.engine import Engine, EngineConfig  # noqa: F811 - the runtime import

    eng = Engine()
    eng.load(tiny_model, EngineConfig(n_ctx=4096, n_threads=2))
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def quantized_models(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model quantized by llama.cpp itself: F16 (the original), Q8_0 and Q4_0."""
    from bench.synthetic_model import quantize

    folder = tmp_path_factory.mktemp("quants")
    return {
        "F16": tiny_model,
        "Q8_0": quantize(tiny_model, folder / "starcoder2-tiny-Q8_0.gguf", "Q8_0"),
        "Q4_0": quantize(tiny_model, folder / "starcoder2-tiny-Q4_0.gguf", "Q4_0"),
    }
