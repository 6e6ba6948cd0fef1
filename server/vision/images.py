"""Safe decoding of untrusted images.

Every photo comes from a client we do not control. Before any model or storage sees it, it goes
through :func:`decode_image`, which

* refuses empty and oversized files before parsing anything,
* identifies the format from the bytes (never from a file name or a declared content type) and
  accepts only JPEG, PNG and WebP,
* reads the size each format declares in its header with our own few lines of parsing and
  refuses images above the pixel cap *before* Pillow sees them, so a small file claiming
  50,000 × 50,000 pixels (a decompression bomb) costs nothing,
* decodes no more pixels than it keeps: what comes out is at most ``STORED_MAX_SIDE`` on its
  longest side (the stored copy's size; the models look at 224 × 224). A JPEG is decoded at
  1/2, 1/4 or 1/8 scale straight out of the DCT (Pillow's ``draft``), so its cap can be
  generous; PNG and WebP can only be decoded whole, so their cap is lower and is what bounds
  the memory of one decode,
* lets at most ``MAX_CONCURRENT_DECODES`` decodes run at once in the process (a semaphore):
  a burst of large photos waits its turn instead of multiplying the peak memory,
* decodes fully and turns every decoder error into :class:`ImageRejected`,
* applies the EXIF orientation (phones store portrait photos sideways plus a flag) and then
  drops all metadata: EXIF (with GPS), XMP, ICC profiles, comments. The re-encoded JPEG
  (:meth:`DecodedImage.clean_jpeg`) is what may be stored; the original bytes never are.

Peak memory, before and after these bounds: ``bench/decode_memory.py``, figures in
``docs/benchmarks.md``.

Why no ``warnings.catch_warnings()`` here: decoding runs in threads (``asyncio.to_thread``),
and the warnings filters are one list for the whole process. An earlier version turned every
warning into an error for the duration of a decode; with two decodes overlapping, one restored
the other's "error" filter at the wrong moment, and any warning anywhere in the process (a
Celery deprecation warning during a RabbitMQ reconnect) became an exception that stopped the
worker. Pillow's own bomb check (a warning above ``Image.MAX_IMAGE_PIXELS``) never fires for an
image we decode, because our cap is below Pillow's and is checked first from the header; what
Pillow may still warn about while decoding (a malformed EXIF tag) follows the process's
ordinary warning settings and does not refuse the photo.
"""

from __future__ import annotations

import io
import os
import struct
import threading
from dataclasses import dataclass

from PIL import ExifTags, Image, UnidentifiedImageError

from server.vision.errors import ImageRejected, RejectReason

#: Largest accepted file, in bytes. Larger than the inline-frame limit: uploads may be full photos.
MAX_FILE_BYTES = 15 * 1024 * 1024
#: Largest accepted JPEG, in pixels (about a 48 MP phone sensor binned to 12 MP, with margin).
#: A JPEG this large is decoded at 1/4 scale (``draft``), about 2.5 MP. It must stay at or
#: below Pillow's ``Image.MAX_IMAGE_PIXELS`` (89 MP by default), so that Pillow never warns
#: about an image we let through.
MAX_PIXELS = 40_000_000
#: Largest accepted PNG or WebP, in pixels. Pillow decodes these whole, so this is what one
#: decode may hold: 16 MP × 4 bytes (RGBA) = 64 MB. Phone screenshots are 3 to 6 MP, and a
#: phone that saves WebP photos saves them at the binned 12.5 MP.
MAX_PIXELS_FULL_DECODE = 16_000_000
#: Decodes at once in this process, whoever asks (a scan's vision stage, an upload being
#: verified); the others wait in their threads. Peak memory is about this many times one
#: decode's (bench/decode_memory.py).
MAX_CONCURRENT_DECODES = max(1, min(4, os.cpu_count() or 1))
#: Smallest side we can say anything about.
MIN_SIDE = 16
#: Longest side of the stored copy; the models look at 224 × 224, people at a screen.
STORED_MAX_SIDE = 1600
STORED_JPEG_QUALITY = 88

# MPO is a JPEG with extra frames (depth maps, stereo pairs) that many phones write for an
# ordinary photo; Pillow reports it as its own format. Its first frame is the photo.
_FORMATS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}

# Every plugin registered once, at import, rather than lazily by the first decode (which may
# run in several threads at once).
Image.init()

_decodes = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)


@dataclass(frozen=True, slots=True)
class DecodedImage:
    image: Image.Image
    """RGB, upright, without metadata, at most ``STORED_MAX_SIDE`` on its longest side."""
    source_format: str
    """MIME type identified from the bytes."""

    def clean_jpeg(self) -> bytes:
        """Re-encoded copy (longest side at most ``STORED_MAX_SIDE``): the only form to store
        or send on. Encoded on request: classifying alone never needs it."""
        return _encode_clean(self.image)


# --------------------------------------------------------------------------- header probing


def _format_of(data: bytes) -> str | None:
    """JPEG, PNG or WEBP from the magic bytes; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


# SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, SOI, RST0-7.
_JPEG_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the first frame header (the photo itself in an MPO: the other
    frames and the EXIF thumbnail come after it or inside other segments)."""
    pos = 2
    while pos + 1 < len(data):
        if data[pos] != 0xFF:
            return None
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes may pad a marker
            pos += 1
        if pos >= len(data):
            return None
        marker = data[pos]
        if marker in _JPEG_STANDALONE:
            pos += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header came first
            return None
        if pos + 3 > len(data):
            return None
        (length,) = struct.unpack_from(">H", data, pos + 1)
        if marker in _JPEG_SOF:
            if pos + 8 > len(data):
                return None
            height, width = struct.unpack_from(">HH", data, pos + 4)
            return width, height
        pos += 1 + length
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return int(width), int(height)


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


_SIZE_READERS = {"JPEG": _jpeg_size, "PNG": _png_size, "WEBP": _webp_size}


def _other_format(data: bytes) -> str | None:
    """The name of another image format these bytes look like (for a clearer refusal), from
    the plugins' magic-byte tests only: nothing is parsed or decoded."""
    prefix = data[:16]
    for name in Image.ID:
        _factory, accept = Image.OPEN[name]
        try:
            if accept is not None and accept(prefix):
                return name
        except Exception:  # some tests index past a very short prefix (struct.error)
            continue
    return None


def _refuse_unreadable(data: bytes) -> ImageRejected:
    found = _other_format(data)
    if found is None:
        return ImageRejected(
            RejectReason.NOT_AN_IMAGE, "The file is not an image (expected JPEG, PNG or WebP)."
        )
    if found in _FORMATS:  # our magic bytes, but no frame header we could read
        return ImageRejected(
            RejectReason.CORRUPT, f"The file starts like a {found} image but is not a readable one."
        )
    return ImageRejected(
        RejectReason.UNSUPPORTED_FORMAT,
        f"{found} images are not accepted; send a JPEG, PNG or WebP photo.",
    )


def _pixel_cap(fmt: str) -> int:
    """JPEGs decode at reduced scale; the other formats decode whole (see the module's notes)."""
    return MAX_PIXELS if fmt in ("JPEG", "MPO") else MAX_PIXELS_FULL_DECODE


def _check_size(width: int, height: int, fmt: str) -> None:
    cap = _pixel_cap(fmt)
    if width * height > cap:
        kind = "JPEG" if fmt in ("JPEG", "MPO") else "PNG or WebP"
        raise ImageRejected(
            RejectReason.TOO_MANY_PIXELS,
            f"The image is {width} × {height} pixels; the limit for a {kind} is "
            f"{cap // 1_000_000} megapixels.",
        )
    if min(width, height) < MIN_SIDE:
        raise ImageRejected(
            RejectReason.TOO_SMALL,
            f"The image is {width} × {height} pixels; each side must be at least {MIN_SIDE}.",
        )


# --------------------------------------------------------------------------- decoding


def decode_image(
    data: bytes, *, max_bytes: int = MAX_FILE_BYTES, max_side: int = STORED_MAX_SIDE
) -> DecodedImage:
    """Decode untrusted bytes into a clean RGB image, or raise :class:`ImageRejected`.

    ``max_side`` bounds the result's longest side (a JPEG is decoded at the smallest DCT scale
    that still reaches it): live mode, which needs only a model's input, asks for less.

    Safe to call from several threads at once: beyond the decode semaphore it touches no
    process-wide state. A file refused from its header never waits for the semaphore."""
    if not data:
        raise ImageRejected(RejectReason.EMPTY, "The file is empty.")
    if len(data) > max_bytes:
        raise ImageRejected(
            RejectReason.TOO_LARGE,
            f"The file is {len(data):,} bytes; the limit is {max_bytes:,} bytes.",
        )
    fmt = _format_of(data)
    declared = _SIZE_READERS[fmt](data) if fmt is not None else None
    if fmt is None or declared is None:
        raise _refuse_unreadable(data)
    _check_size(*declared, fmt)  # before Pillow allocates anything
    with _decodes:
        try:
            image = _open(data, fmt)
            # Pillow parsed the header too; should it read another size than ours, its word
            # counts.
            _check_size(*image.size, image.format or fmt)
            source_format = _FORMATS[image.format or ""]
            if image.format in ("JPEG", "MPO"):
                # The decoder skips what the shrink below would throw away: Pillow picks the
                # largest of 1/2, 1/4, 1/8 that keeps both sides at least this large, so the
                # long side stays at least STORED_MAX_SIDE. (A square box would let the short
                # side decide: a 4:3 photo would be decoded at twice the scale it needs.)
                image.draft("RGB", _stored_size(image.size, max_side))
            image.load()
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
            clean = _upright(_to_rgb(_shrink(image, max_side)), orientation)
        except ImageRejected:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageRejected(RejectReason.TOO_MANY_PIXELS, str(exc)) from None
        except (OSError, ValueError, SyntaxError, EOFError, KeyError, Warning) as exc:
            # ``Warning``: only where the process itself made warnings errors (the test suite);
            # this module never does.
            raise ImageRejected(
                RejectReason.CORRUPT, f"The image could not be decoded ({exc})."
            ) from None
    return DecodedImage(image=clean, source_format=source_format)


def _stored_size(size: tuple[int, int], max_side: int = STORED_MAX_SIDE) -> tuple[int, int]:
    """``size`` scaled down (never up) to ``max_side`` on its longest side."""
    width, height = size
    scale = max_side / max(width, height)
    if scale >= 1:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


#: Modes the resampling filters take as they are; any other is made RGB(A) first.
_RESIZABLE = frozenset({"RGB", "RGBA", "L", "LA"})


def _shrink(image: Image.Image, max_side: int = STORED_MAX_SIDE) -> Image.Image:
    """At most ``max_side`` on the longest side, before any full-size copy is made."""
    target = _stored_size(image.size, max_side)
    if target == image.size:
        return image
    if image.mode not in _RESIZABLE:  # a palette scales nearest-neighbour only; 16-bit not
        image = _to_rgb(image)
    # reducing_gap: a box pre-shrink by an integer factor first, as the thumbnail does.
    return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _upright(image: Image.Image, orientation: object) -> Image.Image:
    """Apply the EXIF orientation read from the file (as ``ImageOps.exif_transpose`` does, on
    the shrunken image rather than the full one)."""
    method = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    return image if method is None else image.transpose(method)


def _open(data: bytes, fmt: str) -> Image.Image:
    """Pillow's lazy open (headers only), restricted to the format the magic bytes named."""
    try:
        return Image.open(io.BytesIO(data), formats=[fmt])
    except UnidentifiedImageError:
        raise _refuse_unreadable(data) from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """A fresh RGB image holding only pixels (no ``info``, no EXIF, no ICC profile)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels over white, as a product photo would appear on a page.
        rgba = image.convert("RGBA")
        base = Image.new("RGB", rgba.size, (255, 255, 255))
        base.paste(rgba, mask=rgba.getchannel("A"))
        return base
    rgb = image.convert("RGB")
    clean = Image.new("RGB", rgb.size)
    clean.paste(rgb)
    return clean


def _encode_clean(image: Image.Image) -> bytes:
    # Already at most STORED_MAX_SIDE (decode_image shrank it). No exif=, no icc_profile=:
    # Pillow writes none unless asked.
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=STORED_JPEG_QUALITY, optimize=True)
    return out.getvalue()
