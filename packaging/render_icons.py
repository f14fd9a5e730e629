"""Render resources/icons/rusty-cat.svg to the PNG sizes desktops want, and a Windows .ico.

Run from the checkout after changing the SVG (the outputs are committed, so building never needs this):

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/render_icons.py

Writes ``resources/icons/hicolor/<N>x<N>/apps/rusty-cat.png`` for N in 16, 32, 48, 64, 128, 256, 512 (the
freedesktop hicolor layout, installable as is under /usr/share/icons) and ``resources/icons/rusty-cat.ico``
(16-256 px, PNG-compressed entries, which Windows Vista and later read).

macOS: the .icns is built at packaging time from the same PNGs (``iconutil -c icns`` on an ``.iconset``
folder named icon_16x16.png, icon_16x16@2x.png … icon_512x512.png), in the packaging issue.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parent.parent
SVG = ROOT / "resources" / "icons" / "rusty-cat.svg"
HICOLOR = ROOT / "resources" / "icons" / "hicolor"
ICO = ROOT / "resources" / "icons" / "rusty-cat.ico"
PNG_SIZES = (16, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # 256 is the largest size an .ico entry can declare


def render(renderer: QSvgRenderer, size: int) -> bytes:
    """The SVG at ``size`` x ``size`` on a transparent background, as PNG bytes."""
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise RuntimeError(f"could not encode the {size}px PNG")
    buffer.close()
    return bytes(data.data())


def build_ico(images: dict[int, bytes]) -> bytes:
    """An ICO file whose entries are PNG streams (ICONDIR, ICONDIRENTRY per image, then the data)."""
    sizes = sorted(images)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries = b""
    payload = b""
    for size in sizes:
        data = images[size]
        side = 0 if size >= 256 else size  # 0 means 256 in an ICONDIRENTRY
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(data), offset)
        payload += data
        offset += len(data)
    return header + entries + payload


def main() -> int:
    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        print(f"cannot read {SVG}", file=sys.stderr)
        return 1
    for size in PNG_SIZES:
        target = HICOLOR / f"{size}x{size}" / "apps" / "rusty-cat.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(render(renderer, size))
        print(target.relative_to(ROOT))
    ICO.write_bytes(build_ico({size: render(renderer, size) for size in ICO_SIZES}))
    print(ICO.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
