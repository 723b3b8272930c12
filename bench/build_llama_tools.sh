#!/usr/bin/env bash
# Build llama.cpp's own `llama-bench` and `llama-server` from the exact llama.cpp source vendored in the
# llama-cpp-python sdist that Starpad runs on, so the benchmark compares Starpad against the same code, compiled the
# same way (Release, native CPU, like pip's default build of the binding).
#
# Compiles once per machine (~10 min on 2 cores) and caches the binaries outside the checkout, in
# ${XDG_CACHE_HOME:-~/.cache}/starpad/llama.cpp-<version>/bin, so every clone on the machine (CI's too) builds once.
# Prints the bin directory on the last line of stdout.
#
#   bash bench/build_llama_tools.sh [PYTHON]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
python="${1:-$here/../.venv/bin/python}"
version="$("$python" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')"
cache="${STARPAD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/starpad}/llama.cpp-$version"
bin="$cache/bin"

if [[ -x "$bin/llama-bench" && -x "$bin/llama-server" ]]; then
    echo "$bin"
    exit 0
fi

mkdir -p "$cache"
src="$cache/src/llama_cpp_python-$version/vendor/llama.cpp"
if [[ ! -f "$src/CMakeLists.txt" ]]; then
    echo "fetching the llama-cpp-python $version sdist" >&2
    "$python" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$cache" >&2
    mkdir -p "$cache/src"
    tar -xzf "$cache/llama_cpp_python-$version.tar.gz" -C "$cache/src"
fi

echo "building llama-bench and llama-server from $src (once per machine)" >&2
# Ninja when it is there (packaging/dev.sh installs it), make otherwise; an existing build folder keeps its own.
generator=(-G "Unix Makefiles")
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
[[ -f "$cache/build/CMakeCache.txt" ]] && generator=()
cmake -S "$src" -B "$cache/build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >&2
cmake --build "$cache/build" --target llama-bench llama-server -j "$(nproc)" >&2
mkdir -p "$bin"
cp "$cache/build/bin/llama-bench" "$cache/build/bin/llama-server" "$bin/"
echo "$bin"
