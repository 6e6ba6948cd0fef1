"""Files for the upload tests, made with Pillow: photos with metadata, non-images, bombs."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from PIL import Image

#: Strings planted in the metadata; none may reach storage.
CAMERA_MAKE = "PhoneMaker"
CAMERA_MODEL = "Model X1 Secret"


def photo_with_gps(size: tuple[int, int] = (640, 480)) -> bytes:
    """A JPEG with EXIF camera make and model and a GPS position (Seoul City Hall)."""
    image = Image.new("RGB", size, (40, 140, 60))
    image.paste((220, 220, 220), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    exif = Image.Exif()
    exif[0x010F] = CAMERA_MAKE
    exif[0x0110] = CAMERA_MODEL
    exif[0x8825] = {1: "N", 2: (37.0, 33.0, 59.0), 3: "E", 4: (126.0, 58.0, 41.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), quality=90)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825), "the GPS tag is there"
    return data


def jpeg_with_zip() -> bytes:
    """A JPEG/ZIP polyglot: a valid photo with a ZIP archive appended (both readers accept it)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("payload.txt", "SECRET-PAYLOAD")
    return photo_with_gps((64, 64)) + archive.getvalue()


#: A GIF header that is also a JavaScript statement (the classic GIF/JS polyglot).
GIF_JS = b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=alert(document.cookie);//\x00;"
HTML = b"<html><body><script>alert(1)</script></body></html>"


def big_flat_png(width: int = 8000, height: int = 5000) -> bytes:
    """A real PNG (every row present) of one grey: some 100 KB for 40 MP."""
    out = io.BytesIO()
    Image.new("L", (width, height), 90).save(out, format="PNG", compress_level=9)
    return out.getvalue()


def png_header_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A few dozen bytes declaring ``width`` × ``height``."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def small_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(out, format="JPEG")
    return out.getvalue()
