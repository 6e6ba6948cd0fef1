"""Safe decoding of untrusted images.

Every photo comes from a client we do not control. Before any model or storage sees it, it goes
through :func:`decode_image`, which

* refuses empty and oversized files before parsing anything,
* identifies the format from the bytes (never from a file name or a declared content type) and
  accepts only JPEG, PNG and WebP,
* refuses images whose declared size exceeds the pixel cap *before* decoding them, so a small
  file claiming 50,000 × 50,000 pixels (a decompression bomb) costs nothing,
* decodes fully inside ``Image.MAX_IMAGE_PIXELS`` and turns every decoder error into
  :class:`ImageRejected`,
* applies the EXIF orientation (phones store portrait photos sideways plus a flag) and then
  drops all metadata: EXIF (with GPS), XMP, ICC profiles, comments. The re-encoded JPEG
  (:meth:`DecodedImage.clean_jpeg`) is what may be stored; the original bytes never are.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from server.vision.errors import ImageRejected, RejectReason

#: Largest accepted file, in bytes. Larger than the inline-frame limit: uploads may be full photos.
MAX_FILE_BYTES = 15 * 1024 * 1024
#: Largest accepted image, in pixels (about a 48 MP phone sensor binned to 12 MP, with margin).
MAX_PIXELS = 40_000_000
#: Smallest side we can say anything about.
MIN_SIDE = 16
#: Longest side of the stored copy; the models look at 224 × 224, people at a screen.
STORED_MAX_SIDE = 1600
STORED_JPEG_QUALITY = 88

# MPO is a JPEG with extra frames (depth maps, stereo pairs) that many phones write for an
# ordinary photo; Pillow reports it as its own format. Its first frame is the photo.
_FORMATS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_ALLOWED = ("JPEG", "PNG", "WEBP")


@dataclass(frozen=True, slots=True)
class DecodedImage:
    image: Image.Image
    """RGB, upright, without metadata."""
    source_format: str
    """MIME type identified from the bytes."""

    def clean_jpeg(self) -> bytes:
        """Re-encoded copy (longest side at most ``STORED_MAX_SIDE``): the only form to store
        or send on. Encoded on request: classifying alone never needs it."""
        return _encode_clean(self.image)


def _open(data: bytes) -> Image.Image:
    try:
        # ``formats`` limits which decoders Pillow will even try on these bytes.
        return Image.open(io.BytesIO(data), formats=_ALLOWED)
    except UnidentifiedImageError:
        pass
    # Tell "an image we do not take" apart from "not an image" for a clearer message.
    try:
        with Image.open(io.BytesIO(data)) as other:
            found = other.format or "unknown"
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        raise ImageRejected(
            RejectReason.NOT_AN_IMAGE, "The file is not an image (expected JPEG, PNG or WebP)."
        ) from None
    raise ImageRejected(
        RejectReason.UNSUPPORTED_FORMAT,
        f"{found} images are not accepted; send a JPEG, PNG or WebP photo.",
    )


def decode_image(data: bytes, *, max_bytes: int = MAX_FILE_BYTES) -> DecodedImage:
    """Decode untrusted bytes into a clean RGB image, or raise :class:`ImageRejected`."""
    if not data:
        raise ImageRejected(RejectReason.EMPTY, "The file is empty.")
    if len(data) > max_bytes:
        raise ImageRejected(
            RejectReason.TOO_LARGE,
            f"The file is {len(data):,} bytes; the limit is {max_bytes:,} bytes.",
        )
    with warnings.catch_warnings():
        # Pillow warns (DecompressionBombWarning) between MAX_IMAGE_PIXELS and twice that; we
        # check the size ourselves below and turn every other warning into a refusal.
        warnings.simplefilter("error")
        try:
            image = _open(data)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageRejected(
                    RejectReason.TOO_MANY_PIXELS,
                    f"The image is {width} × {height} pixels; the limit is "
                    f"{MAX_PIXELS // 1_000_000} megapixels.",
                )
            if min(width, height) < MIN_SIDE:
                raise ImageRejected(
                    RejectReason.TOO_SMALL,
                    f"The image is {width} × {height} pixels; each side must be at least "
                    f"{MIN_SIDE}.",
                )
            source_format = _FORMATS[image.format or ""]
            # Big phone JPEGs: let the decoder skip detail we would throw away anyway.
            if image.format in ("JPEG", "MPO"):
                image.draft("RGB", (STORED_MAX_SIDE, STORED_MAX_SIDE))
            image.load()
            upright = ImageOps.exif_transpose(image)
        except ImageRejected:
            raise
        except (
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ) as exc:
            raise ImageRejected(RejectReason.TOO_MANY_PIXELS, str(exc)) from None
        except (OSError, ValueError, SyntaxError, EOFError, KeyError, Warning) as exc:
            raise ImageRejected(
                RejectReason.CORRUPT, f"The image could not be decoded ({exc})."
            ) from None
    rgb = _to_rgb(upright)
    return DecodedImage(image=rgb, source_format=source_format)


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
    stored = image
    if max(image.size) > STORED_MAX_SIDE:
        stored = image.copy()
        stored.thumbnail((STORED_MAX_SIDE, STORED_MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # No exif=, no icc_profile=: Pillow writes none unless asked.
    stored.save(out, format="JPEG", quality=STORED_JPEG_QUALITY, optimize=True)
    return out.getvalue()
