#!/usr/bin/env bash
# Set up Starpad on a fresh Debian/Ubuntu machine, then run it or its tests. Idempotent.
#
#   bash packaging/dev.sh run     # system libraries + .venv + the app window
#   bash packaging/dev.sh test    # system libraries + .venv + ruff + mypy + the whole test suite
#
# GPU builds of llama.cpp (default: CPU only, unchanged):
#   STARPAD_GPU=cuda   bash packaging/dev.sh setup   # needs the CUDA toolkit (nvcc) on PATH
#   STARPAD_GPU=vulkan bash packaging/dev.sh setup   # needs libvulkan-dev, glslc and Vulkan headers >= 1.3.275
#   (macOS: Metal is on by default in llama-cpp-python's build; nothing to set.)
# It reinstalls llama-cpp-python with CMAKE_ARGS=-DGGML_CUDA=on / -DGGML_VULKAN=on and
# FORCE_CMAKE=1, without pip's cached CPU wheel; `main.py fit --n-gpu-layers auto` then
# shows how many layers fit in the GPU's free memory.
#
# The first run compiles llama.cpp inside llama-cpp-python (~14 min on 2 cores); pip
# caches the wheel, so later runs (and CI on the same machine) take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

verb="${1:-run}"
shift || true
PYTHON="${PYTHON:-python3}"
VENV=".venv"

# Qt's xcb platform (a real window), fonts, Xvfb for screenshots and GUI smoke runs,
# desktop-file-utils to validate the .desktop entry, a compiler for llama.cpp, and bubblewrap
# (bwrap): the sandbox that generated code runs in during quality evaluation.
APT_PACKAGES=(
  build-essential cmake ninja-build
  libegl1 libgl1 libfontconfig1 libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
  libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-xfixes0 libxcb-sync1
  fonts-dejavu-core xvfb xauth desktop-file-utils
  bubblewrap
)

install_system_packages() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "starpad setup: not a Debian-like system; install the equivalents of: ${missing[*]}" >&2
    return 0
  fi
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "starpad setup: installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_python_packages() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.starpad-installed"
  # Reinstall only when the declared dependencies changed.
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip
  echo "starpad setup: installing Python packages (the first llama.cpp compile takes ~14 min)"
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  rm -f "$VENV/.starpad-gpu"  # pip may have put the CPU wheel back: a GPU build is redone
  echo "$want" > "$stamp"
}

install_gpu_build() {
  local gpu="${STARPAD_GPU:-}"
  [ -z "$gpu" ] && return 0
  local flag
  case "$gpu" in
    cuda) flag="-DGGML_CUDA=on" ;;
    vulkan) flag="-DGGML_VULKAN=on" ;;
    *) echo "starpad setup: STARPAD_GPU must be cuda or vulkan, not '$gpu'" >&2; exit 2 ;;
  esac
  local stamp="$VENV/.starpad-gpu"
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$gpu" ] && return 0
  local version
  version="$("$VENV/bin/python" -c 'import llama_cpp; print(llama_cpp.__version__)')"
  echo "starpad setup: rebuilding llama-cpp-python $version with $flag (compiles llama.cpp again)"
  CMAKE_ARGS="$flag" FORCE_CMAKE=1 "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps \
    --no-cache-dir --no-binary llama-cpp-python "llama-cpp-python==$version"
  "$VENV/bin/python" -c 'import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)' \
    || { echo "starpad setup: the $gpu build cannot offload (see the compiler output above)" >&2; exit 1; }
  echo "$gpu" > "$stamp"
}

install_system_packages
install_python_packages
install_gpu_build

export HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_XET=1
case "$verb" in
  run)
    exec "$VENV/bin/python" main.py "$@"
    ;;
  test)
    export QT_QPA_PLATFORM=offscreen
    # Lint and types first (seconds); their settings and per-module exclusions live in pyproject.toml.
    echo "starpad test: ruff check"
    "$VENV/bin/python" -m ruff check .
    echo "starpad test: mypy"
    "$VENV/bin/python" -m mypy
    # The remote-engine tests run llama.cpp's own llama-server against the tiny model: built from the
    # llama.cpp vendored in the llama-cpp-python sdist, once per machine, cached outside the checkout.
    echo "starpad test: llama-server (built once per machine, ~10 min the first time)"
    bash bench/build_llama_tools.sh "$VENV/bin/python" >/dev/null
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  setup)
    echo "starpad setup: ready ($VENV)"
    ;;
  *)
    echo "usage: bash packaging/dev.sh run|test|setup [args…]" >&2
    exit 2
    ;;
esac
