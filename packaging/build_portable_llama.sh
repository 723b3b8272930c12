#!/usr/bin/env bash
# Build a *portable* llama-cpp-python wheel for release bundles, once per machine.
#
# The default pip build compiles llama.cpp with -march=native: a bundle made from it
# dies with "illegal instruction" on an older CPU. This build turns native tuning off
# and compiles every CPU variant as a plugin (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS);
# ggml picks the best one for the CPU it runs on. Slow on 2 cores, so the wheel is cached.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="$(grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml | cut -d= -f3)"
OUT="packaging/.cache/portable-wheel"
if ls "$OUT"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  echo "portable llama-cpp-python $VERSION already built: $(ls "$OUT"/llama_cpp_python-"$VERSION"-*.whl)"
  exit 0
fi
mkdir -p "$OUT"
echo "building portable llama-cpp-python $VERSION (all CPU variants; this takes a while)"
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON" \
  .venv/bin/python -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
  "llama-cpp-python==$VERSION" -w "$OUT"
ls -la "$OUT"
