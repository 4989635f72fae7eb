"""Render resources/icon.svg to the PNGs the app, the .desktop entry and the installers use.

    python packaging/render_icons.py

writes resources/icons/workbench-<size>.png (16 ... 256), resources/icon.png (256), and, for the Windows
and macOS builds, resources/icons/workbench.ico (16-256) and resources/icons/workbench.icns (16-1024,
retina sizes included). Both containers hold PNG images, which Windows Vista+ and macOS 10.7+ read.

Uses Qt's own SVG renderer (PySide6 is a dependency already), offscreen, so no display, no rsvg, no
Inkscape and no iconutil is needed. Run it again after editing the SVG and commit the outputs with it.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

SIZES = (16, 32, 48, 64, 128, 256)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# Apple's icns types that hold PNG data, by pixel size (the @2x types reuse the larger renders).
ICNS_TYPES = ((b"icp4", 16), (b"icp5", 32), (b"icp6", 64), (b"ic07", 128), (b"ic08", 256), (b"ic09", 512),
              (b"ic10", 1024), (b"ic11", 32), (b"ic12", 64), (b"ic13", 256), (b"ic14", 512))
ROOT = Path(__file__).resolve().parents[1]
SVG = ROOT / "resources" / "icon.svg"
OUT = ROOT / "resources" / "icons"


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])  # noqa: F841 - Qt needs one
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        print(f"render_icons: {SVG} is not a valid SVG", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)

    def render(size: int) -> bytes:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        if not image.save(buffer, "PNG"):
            raise RuntimeError(f"cannot encode the {size} px render")
        return bytes(buffer.data())

    pngs = {size: render(size) for size in sorted(set(SIZES) | set(ICO_SIZES) | {s for _, s in ICNS_TYPES})}
    for size in SIZES:
        write(OUT / f"workbench-{size}.png", pngs[size])
    write(ROOT / "resources" / "icon.png", pngs[256])
    write(OUT / "workbench.ico", ico(pngs, ICO_SIZES))
    write(OUT / "workbench.icns", icns(pngs))
    return 0


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    print(f"{path.relative_to(ROOT)} ({len(data):,} bytes)")


def ico(pngs: dict[int, bytes], sizes: tuple[int, ...]) -> bytes:
    """A Windows .ico holding PNG images (ICONDIR, one ICONDIRENTRY each, then the images)."""
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries, images = b"", b""
    for size in sizes:
        data = pngs[size]
        side = 0 if size >= 256 else size  # 0 means 256
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(data), offset)
        images += data
        offset += len(data)
    return header + entries + images


def icns(pngs: dict[int, bytes]) -> bytes:
    """A macOS .icns holding PNG images (what ``iconutil -c icns`` makes from an .iconset)."""
    body = b"".join(kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size] for kind, size in ICNS_TYPES)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


if __name__ == "__main__":
    raise SystemExit(main())
