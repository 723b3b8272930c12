"""Scenario 5: generation speed against the memory-bandwidth limit.

Generating one token reads every weight once, so tokens/s can never exceed
read bandwidth ÷ model bytes. The fraction of that limit a run reaches says how much
speed is left on the table (compute, threading, overhead) and how much is physics.

Bandwidth comes from bench/membw.c (compiled once with the system C compiler, cached
in ~/.cache/starpad) with as many threads as generation uses; without a compiler, from
NumPy reductions on as many Python threads (NumPy releases the GIL while summing).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("starpad.bench.bandwidth")
HERE = Path(__file__).resolve().parent


@dataclass
class Bandwidth:
    bytes_per_s: float
    threads: int
    buffer_mib: int
    method: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _membw_binary() -> Path | None:
    from bench.harness import tools_cache

    binary = tools_cache() / "membw"
    source = HERE / "membw.c"
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return None
    binary.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([compiler, "-O3", "-march=native", "-pthread", str(source), "-o", str(binary)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        log.warning("could not compile membw.c: %s", done.stderr.strip()[:300])
        return None
    return binary


def _numpy_bandwidth(buffer_mib: int, threads: int, passes: int) -> float:
    """Without a C compiler: the app's own NumPy measurement (the model dialog's machine check)."""
    from app.core.machine_check import measure_bandwidth

    return measure_bandwidth(threads, buffer_mib, passes)


def measure(threads: int, buffer_mib: int = 1024, passes: int = 5) -> Bandwidth:
    binary = _membw_binary()
    if binary is not None:
        out = subprocess.run([str(binary), str(buffer_mib), str(threads), str(passes)],
                             capture_output=True, text=True, check=True)
        return Bandwidth(float(out.stdout.strip()), threads, buffer_mib, "membw.c")
    return Bandwidth(_numpy_bandwidth(buffer_mib, threads, passes), threads, buffer_mib, "numpy")
