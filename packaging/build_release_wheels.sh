#!/usr/bin/env bash
# Build the two wheels a release bundle needs instead of pip's defaults, once per machine
# (both compile from source and are cached in packaging/.cache/):
#
# * llama-cpp-python, *portable*: the default pip build compiles llama.cpp with
#   -march=native, and a bundle made from it dies with "illegal instruction" on an older
#   CPU. This build turns native tuning off and compiles every CPU variant as a plugin
#   (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS); ggml picks the best one at run time.
#   ~16 min on 2 cores.
# * NumPy without BLAS/LAPACK: NumPy's wheels carry OpenBLAS + libgfortran (28 MB, an
#   eighth of the bundle). Starpad uses NumPy for array plumbing only (llama-cpp-python's
#   buffers, pyqtgraph's chart); NumPy builds without a BLAS (its own C loops, bundled
#   lapack-lite). ~10 min. Development and tests keep the regular wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

# build_once NAME VERSION OUT_DIR COMMAND...: run COMMAND -w OUT_DIR unless the wheel is cached.
build_once() {
  local name="$1" version="$2" out="$3"
  shift 3
  if ls "$out/$name-$version"-*.whl >/dev/null 2>&1; then
    echo "$name $version already built: $(ls "$out/$name-$version"-*.whl)"
    return 0
  fi
  mkdir -p "$out"
  echo "building $name $version (once per machine; this takes a while)"
  "$@" -w "$out"
  ls -la "$out"
}

LLAMA_VERSION="$(grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml | cut -d= -f3)"
NUMPY_VERSION="$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("numpy"))')"

build_once llama_cpp_python "$LLAMA_VERSION" packaging/.cache/portable-wheel \
  env CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON" \
  .venv/bin/python -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_VERSION"

build_once numpy "$NUMPY_VERSION" packaging/.cache/numpy-noblas \
  .venv/bin/python -m pip wheel --no-deps --no-cache-dir --no-binary numpy "numpy==$NUMPY_VERSION" \
  -Csetup-args=-Dblas=none -Csetup-args=-Dlapack=none -Csetup-args=-Dallow-noblas=true
