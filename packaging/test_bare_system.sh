#!/usr/bin/env bash
# Prove the bundle runs on a bare Debian system with no Python: debootstrap a minimal
# root filesystem, copy the bundle in, and run its self-test inside it with chroot.
#
#   sudo bash packaging/test_bare_system.sh dist/Starpad MODEL.gguf [ROOTFS_DIR]
set -euo pipefail
BUNDLE="$(realpath "$1")"
MODEL="$(realpath "$2")"
ROOTFS="${3:-/tmp/starpad-bare-rootfs}"
SUITE="${SUITE:-bookworm}"
# The display stack every graphical Linux system has. PyInstaller never bundles these on
# purpose (they must match the machine's graphics drivers), so the bare system gets them
# and nothing else: no Python, no Qt, no numpy, no llama.cpp.
DESKTOP_LIBS="libgl1 libegl1 libxcb1 libwayland-client0 libwayland-cursor0 libwayland-egl1 libdrm2"

if [ ! -x "$ROOTFS/bin/sh" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
  echo "creating a minimal Debian $SUITE root filesystem in $ROOTFS (no Python)"
  debootstrap --variant=minbase "$SUITE" "$ROOTFS" >/tmp/starpad-debootstrap.log 2>&1 \
    || { tail -20 /tmp/starpad-debootstrap.log; exit 1; }
fi
if ! chroot "$ROOTFS" dpkg -s $DESKTOP_LIBS >/dev/null 2>&1; then
  echo "installing the display-stack libraries into the root filesystem: $DESKTOP_LIBS"
  mount -t proc proc "$ROOTFS/proc" 2>/dev/null || true
  chroot "$ROOTFS" apt-get install -y -qq --no-install-recommends $DESKTOP_LIBS >/dev/null
  umount "$ROOTFS/proc" 2>/dev/null || true
fi
if chroot "$ROOTFS" /bin/sh -c 'command -v python3 || command -v python' >/dev/null 2>&1; then
  echo "the root filesystem has Python; this test needs a bare system" >&2
  exit 1
fi
rm -rf "$ROOTFS/opt/starpad"
mkdir -p "$ROOTFS/opt/starpad" "$ROOTFS/opt/models"
cp -a "$BUNDLE/." "$ROOTFS/opt/starpad/"
cp "$MODEL" "$ROOTFS/opt/models/model.gguf"
echo "running the self-test inside $ROOTFS"
mount -t proc proc "$ROOTFS/proc"
trap 'umount "$ROOTFS/proc" 2>/dev/null || true' EXIT
chroot "$ROOTFS" /usr/bin/env -i HOME=/root QT_QPA_PLATFORM=offscreen \
  /opt/starpad/starpad --self-test /opt/models/model.gguf
