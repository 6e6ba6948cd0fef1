"""The photos a load test scans, read once per process from the folder ``--photos`` names.

A photo goes to the server as the user's phone would send it: the file itself through the
upload path (up to the upload limit), or inline in ``scan.start`` (up to the inline limit: a
larger photo is re-encoded smaller, as the app does before sending it inline), and for live
mode as a 640 × 480 camera frame. What cannot be read as a picture is refused before the run
starts, with its name, rather than sent as a scan that fails.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from protocol.messages import MAX_INLINE_IMAGE_BYTES, MAX_LIVE_FRAME_BYTES

SUFFIXES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
            ".webp": "image/webp"}
#: The upload limit of a default server (WASTECOACH_UPLOADS__MAX_BYTES).
MAX_UPLOAD_BYTES = 10_485_760
#: Photos read at most: a load test needs variety, not a whole data set in memory.
MAX_PHOTOS = 200


class PhotoError(ValueError):
    """The photo folder is missing, empty or holds a file that is not a picture."""


@dataclass(frozen=True)
class Photo:
    name: str
    content_type: str  #: the file's
    data: bytes  #: the file, for the upload path
    inline_type: str  #: the inline copy's: the file's, or image/jpeg when made smaller
    inline_b64: str  #: base64 of the file, or of a smaller JPEG of it (inline limit)
    camera_frame: bytes  #: a 640 × 480 JPEG for live mode


def _jpeg(image: Image.Image, size: tuple[int, int] | None, limit: int) -> bytes:
    picture = image.convert("RGB")
    if size is not None:
        picture = picture.resize(size)
    for quality in (85, 70, 50, 30):
        out = io.BytesIO()
        picture.save(out, format="JPEG", quality=quality)
        if out.tell() <= limit:
            return out.getvalue()
        picture.thumbnail((picture.width * 3 // 4, picture.height * 3 // 4))
    raise PhotoError("could not make a small enough JPEG")


def load_photo(path: Path) -> Photo:
    content_type = SUFFIXES.get(path.suffix.lower())
    if content_type is None:
        raise PhotoError(f"{path}: not a .jpg, .jpeg, .png or .webp file")
    data = path.read_bytes()
    if len(data) > MAX_UPLOAD_BYTES:
        raise PhotoError(f"{path}: {len(data)} bytes, over the upload limit {MAX_UPLOAD_BYTES}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            inline, inline_type = data, content_type
            if len(data) > MAX_INLINE_IMAGE_BYTES:
                inline, inline_type = _jpeg(image, None, MAX_INLINE_IMAGE_BYTES), "image/jpeg"
            frame = _jpeg(image, (640, 480), MAX_LIVE_FRAME_BYTES)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PhotoError(f"{path}: not a readable picture ({exc})") from exc
    return Photo(
        path.name, content_type, data, inline_type, base64.b64encode(inline).decode(), frame
    )


def load_photos(folder: str) -> list[Photo]:
    """The photos under ``folder`` (sorted by path, at most :data:`MAX_PHOTOS`)."""
    if not folder:
        raise PhotoError("this scenario scans photos: name a folder of them with --photos DIR")
    root = Path(folder)
    if not root.is_dir():
        raise PhotoError(f"--photos {folder}: no such folder")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    if not paths:
        raise PhotoError(f"--photos {folder}: no .jpg, .jpeg, .png or .webp file in it")
    return [load_photo(p) for p in paths[:MAX_PHOTOS]]
