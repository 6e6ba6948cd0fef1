"""A clip for Chromium's fake camera (``--use-file-for-fake-video-capture``), built from a real
photo: the item slides in, then is held still. Chromium loops the file.

Y4M (YUV4MPEG2) is a header line, then per frame ``FRAME\\n`` and the raw planes: Y at full
resolution, then Cb and Cr at half resolution in both directions (4:2:0), full-range BT.601
("C420jpeg", what PIL's ``YCbCr`` conversion produces).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT, FPS = 640, 480, 10


def frames(photo: Path, *, moving_s: float = 1.5, steady_s: float = 4.0) -> list[Image.Image]:
    """The photo, scaled to the frame, sliding in from the left over the colour of its own
    border, then still."""
    item = Image.open(photo).convert("RGB").resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS)
    pixels = np.asarray(item)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = tuple(int(v) for v in np.median(border, axis=0))
    moving = round(moving_s * FPS)
    out = []
    for i in range(moving):
        shift = round((moving - i) * 600 / moving)  # 600 px away, closing in: 40 px a frame
        frame = Image.new("RGB", (WIDTH, HEIGHT), background)
        frame.paste(item, (-shift, 0))
        out.append(frame)
    out.extend([item] * round(steady_s * FPS))
    return out


def write_y4m(images: list[Image.Image], path: Path) -> Path:
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for image in images:
            ycc = image.convert("YCbCr")
            y, cb, cr = ycc.split()
            half = (WIDTH // 2, HEIGHT // 2)
            f.write(b"FRAME\n")
            f.write(y.tobytes())
            f.write(cb.resize(half, Image.Resampling.BOX).tobytes())
            f.write(cr.resize(half, Image.Resampling.BOX).tobytes())
    return path


def round_trip(image: Image.Image) -> Image.Image:
    """What the camera hands the page for ``image``: 4:2:0 chroma, back to RGB."""
    y, cb, cr = image.convert("YCbCr").split()
    half = (WIDTH // 2, HEIGHT // 2)
    cb = cb.resize(half, Image.Resampling.BOX).resize(image.size, Image.Resampling.BILINEAR)
    cr = cr.resize(half, Image.Resampling.BOX).resize(image.size, Image.Resampling.BILINEAR)
    return Image.merge("YCbCr", (y, cb, cr)).convert("RGB")
