#!/usr/bin/env bash
# Build the double-click bundle: dist/Starpad/ (one folder) and dist/Starpad-VERSION-linux-x86_64.tar.gz.
#
#   bash packaging/build_bundle.sh             # release: portable llama.cpp (all CPU variants)
#   bash packaging/build_bundle.sh --dev       # quick: the llama.cpp already in .venv (this CPU only)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:---release}"
DIST="${DIST:-dist}"
WORK="${WORK:-build}"
bash packaging/dev.sh setup >/dev/null
.venv/bin/python -m pip install -q "pyinstaller==6.22.3"  # also in the test extra
PY=.venv/bin/python
if [ "$MODE" = "--release" ]; then
  bash packaging/build_release_wheels.sh  # portable llama.cpp, NumPy without BLAS
  # A separate build venv keeps the developer's native build untouched.
  [ -x build/venv-release/bin/python ] || python3 -m venv build/venv-release
  # NumPy without OpenBLAS first, so nothing pulls the 28 MB BLAS wheel back in.
  build/venv-release/bin/python -m pip install -q --force-reinstall --no-deps packaging/.cache/numpy-noblas/numpy-*.whl
  build/venv-release/bin/python -m pip install -q packaging/.cache/portable-wheel/llama_cpp_python-*.whl
  build/venv-release/bin/python -m pip install -q . "pyinstaller==6.22.3"
  PY=build/venv-release/bin/python
fi
$PY packaging/make_icons.py
$PY -m PyInstaller --noconfirm --log-level WARN --distpath "$DIST" --workpath "$WORK/pyinstaller" packaging/starpad.spec
# lib*.so and its lib*.so.N SONAME are the same file: keep one, link the other.
( cd "$DIST/Starpad/_internal/llama_cpp/lib" && for so in lib*.so; do
    for soname in "$so".[0-9]*; do
      [ -f "$soname" ] && [ ! -L "$soname" ] && cmp -s "$so" "$soname" && ln -sf "$so" "$soname"
    done
  done ) || true
# Strip what this machine's Python build left unstripped (libpython, its extension
# modules); wheels' libraries stay as they are (strip breaks auditwheel-patched ones).
for lib in "$DIST"/Starpad/_internal/libpython*.so* "$DIST"/Starpad/_internal/python3*/lib-dynload/*.so; do
  [ -L "$lib" ] || strip --strip-unneeded "$lib"
done
cp packaging/starpad.desktop resources/icons/starpad-256.png "$DIST/Starpad/"
VERSION="$($PY -c 'import app; print(app.__version__)')"
tar -C "$DIST" -czf "$DIST/Starpad-$VERSION-linux-$(uname -m).tar.gz" Starpad
du -sh "$DIST/Starpad" "$DIST/Starpad-$VERSION-linux-$(uname -m).tar.gz"
