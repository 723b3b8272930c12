"""Render resources/starpad.svg to PNG sizes, a Windows .ico and a macOS .icns.

Both container formats accept embedded PNG images, so they are written directly:
no ImageMagick or iconutil needed on the build machine.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICNS_TYPES = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09"}


def render_png(renderer: QSvgRenderer, size: int) -> bytes:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data)


def write_ico(path: Path, pngs: dict[int, bytes]) -> None:
    sizes = [s for s in (16, 24, 32, 48, 64, 128, 256) if s in pngs]
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = 6 + 16 * len(sizes)
    entries, blobs = b"", b""
    for size in sizes:
        png = pngs[size]
        entries += struct.pack("<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(png), offset + len(blobs))
        blobs += png
    path.write_bytes(header + entries + blobs)


def write_icns(path: Path, pngs: dict[int, bytes]) -> None:
    body = b"".join(kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size] for size, kind in ICNS_TYPES.items())
    path.write_bytes(b"icns" + struct.pack(">I", 8 + len(body)) + body)


def main(argv: list[str] | None = None) -> int:
    """Write the icons to ``resources/icons`` (or to the folder given as the only argument).

    Tests render into a temporary folder: a test never writes into the checkout.
    """
    argv = sys.argv[1:] if argv is None else argv
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - Qt needs it
    renderer = QSvgRenderer(str(ROOT / "resources" / "starpad.svg"))
    if not renderer.isValid():
        print("cannot read resources/starpad.svg", file=sys.stderr)
        return 1
    out = Path(argv[0]) if argv else ROOT / "resources" / "icons"
    out.mkdir(parents=True, exist_ok=True)
    pngs = {size: render_png(renderer, size) for size in SIZES}
    for size, png in pngs.items():
        (out / f"starpad-{size}.png").write_bytes(png)
    write_ico(out / "starpad.ico", pngs)
    write_icns(out / "starpad.icns", pngs)
    print(f"wrote {len(pngs)} PNGs, starpad.ico and starpad.icns to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
