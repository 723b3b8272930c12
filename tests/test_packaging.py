"""The double-click bundle: built by PyInstaller from the installed llama-cpp-python,
then its own --self-test runs the real window offscreen on the generated model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A regression guard for the --dev bundle: 206 MB here, because it carries the development
# NumPy with OpenBLAS (28 MB); the release bundle swaps in NumPy without BLAS (194 MB).
MAX_BUNDLE_BYTES = 210 * 1000 * 1000


@pytest.mark.slow
def test_bundle_builds_and_passes_its_self_test(tiny_model: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DIST": str(tmp_path / "dist"), "WORK": str(tmp_path / "work")}
    build = subprocess.run(["bash", str(ROOT / "packaging" / "build_bundle.sh"), "--dev"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-4000:]
    bundle = tmp_path / "dist" / "Starpad"
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"bundle size: {size / 1e6:.1f} MB ({size / 2**20:.1f} MiB)")
    assert size <= MAX_BUNDLE_BYTES
    assert list((tmp_path / "dist").glob("Starpad-*-linux-*.tar.gz"))
    libs = bundle / "_internal" / "llama_cpp" / "lib"
    assert (libs / "libllama.so").is_file() and (libs / "libggml-base.so.0").exists()
    # The frozen app must not find this checkout's Python or packages.
    clean_env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "QT_QPA_PLATFORM": "offscreen",
                 "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_DATA_HOME": str(tmp_path / "data")}
    run = subprocess.run([str(bundle / "starpad"), "--self-test", str(tiny_model)],
                         cwd=tmp_path, env=clean_env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "starpad self-test: OK" in run.stdout and "layout spm" in run.stdout
    # The parts the window loads on demand work frozen too (the chart once did not).
    assert "parts: comparison chart (pyqtgraph" in run.stdout
    internal = bundle / "_internal"
    assert not (internal / "PIL").exists() and not list(internal.glob("PySide6/QtOpenGL.*"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00")
    failed = subprocess.run([str(bundle / "starpad"), "--self-test", str(bad)],
                            cwd=tmp_path, env=clean_env, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "FAILED" in failed.stderr


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_desktop_entry_validates() -> None:
    proc = subprocess.run(["desktop-file-validate", str(ROOT / "packaging" / "starpad.desktop")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "error" not in proc.stdout.lower()


def test_icons_are_generated_from_the_svg(tmp_path: Path) -> None:
    python = ROOT / ".venv" / "bin" / "python"
    proc = subprocess.run([str(python) if python.exists() else sys.executable,
                           str(ROOT / "packaging" / "make_icons.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "starpad.ico").read_bytes()[:4] == b"\x00\x00\x01\x00"
    assert (tmp_path / "starpad.icns").read_bytes()[:4] == b"icns"
    assert (tmp_path / "starpad-256.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The committed icons are the ones the SVG renders to (same sizes, same formats).
    committed = ROOT / "resources" / "icons"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in committed.iterdir())
