"""Decoding of untrusted images: limits, formats and metadata stripping."""

from __future__ import annotations

import contextlib
import io
import struct
import threading
import time
import warnings
import zlib

import pytest
from PIL import Image, PngImagePlugin

from server.vision import images
from server.vision.errors import ImageRejected, RejectReason
from server.vision.images import (
    MAX_CONCURRENT_DECODES,
    MAX_PIXELS,
    MAX_PIXELS_FULL_DECODE,
    STORED_MAX_SIDE,
    decode_image,
)
from tests.vision.conftest import jpeg_bytes


def _encode(image: Image.Image, fmt: str, **save: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that *declares* ``width`` × ``height``: the shape of a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def _reason(data: bytes, **kwargs: int) -> RejectReason:
    with pytest.raises(ImageRejected) as info:
        decode_image(data, **kwargs)
    assert info.value.message  # always something to show the user
    return info.value.reason


def test_refuses_what_is_not_an_image() -> None:
    assert _reason(b"%PDF-1.7 this is a document, not a photo") is RejectReason.NOT_AN_IMAGE
    assert _reason(b"") is RejectReason.EMPTY


def test_refuses_image_formats_outside_jpeg_png_webp() -> None:
    gif = _encode(Image.new("RGB", (32, 32), "red"), "GIF")
    bmp = _encode(Image.new("RGB", (32, 32), "red"), "BMP")
    assert _reason(gif) is RejectReason.UNSUPPORTED_FORMAT
    assert _reason(bmp) is RejectReason.UNSUPPORTED_FORMAT


def test_accepts_jpeg_png_and_webp_and_identifies_them_from_the_bytes() -> None:
    image = Image.new("RGB", (64, 48), (10, 120, 200))
    for fmt, mime in (("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")):
        decoded = decode_image(_encode(image, fmt))
        assert decoded.source_format == mime
        assert decoded.image.size == (64, 48)
        assert decoded.image.mode == "RGB"


def test_refuses_files_over_the_size_cap_before_parsing() -> None:
    data = jpeg_bytes(Image.new("RGB", (64, 64), "white"))
    assert _reason(data, max_bytes=len(data) - 1) is RejectReason.TOO_LARGE
    assert decode_image(data, max_bytes=len(data)).image.size == (64, 64)


def test_refuses_too_many_pixels_from_the_header_alone() -> None:
    # 8000 × 6000 = 48 MP, above the cap but below Pillow's own bomb limit.
    just_over = _png_header_only(8000, 6000)
    assert MAX_PIXELS < 8000 * 6000
    assert len(just_over) < 200
    assert _reason(just_over) is RejectReason.TOO_MANY_PIXELS
    # 40,000 × 40,000: Pillow itself calls this a decompression bomb.
    assert _reason(_png_header_only(40_000, 40_000)) is RejectReason.TOO_MANY_PIXELS


def test_our_own_magic_bytes_without_a_frame_are_corrupt_not_another_format() -> None:
    with pytest.raises(ImageRejected) as info:
        decode_image(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    assert info.value.reason is RejectReason.CORRUPT
    assert "not accepted" not in info.value.message  # it once said "JPEG images are not accepted"


def test_refuses_truncated_and_tiny_images() -> None:
    data = jpeg_bytes(Image.effect_noise((256, 256), 64).convert("RGB"))
    assert _reason(data[: len(data) // 2]) is RejectReason.CORRUPT
    assert _reason(_encode(Image.new("RGB", (8, 8)), "PNG")) is RejectReason.TOO_SMALL


def test_applies_exif_orientation_then_strips_all_metadata() -> None:
    image = Image.new("RGB", (80, 40), "white")
    image.paste((255, 0, 0), (0, 0, 40, 40))  # left half red before rotation
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    exif[0x010F] = "PhoneMaker"
    gps = {1: "N", 2: (37.0, 33.0, 59.0), 3: "E", 4: (126.0, 58.0, 41.0)}
    exif[0x8825] = gps
    data = jpeg_bytes(image, exif=exif.tobytes(), quality=95)
    assert Image.open(io.BytesIO(data)).getexif().get(0x0112) == 6

    decoded = decode_image(data)
    assert decoded.image.size == (40, 80)  # upright
    top_pixel = decoded.image.getpixel((20, 5))
    assert isinstance(top_pixel, tuple) and top_pixel[0] > 200 and top_pixel[1] < 60

    stored = Image.open(io.BytesIO(decoded.clean_jpeg()))
    assert stored.size == (40, 80)
    assert len(stored.getexif()) == 0
    assert "exif" not in stored.info
    assert b"PhoneMaker" not in decoded.clean_jpeg()
    assert decoded.image.info == {}


def test_strips_png_text_and_icc_profile() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "someone@example.com")
    data = _encode(Image.new("RGB", (64, 64), "blue"), "PNG", pnginfo=info, icc_profile=b"x" * 64)
    decoded = decode_image(data)
    stored = Image.open(io.BytesIO(decoded.clean_jpeg()))
    assert "icc_profile" not in stored.info
    assert b"someone@example.com" not in decoded.clean_jpeg()


def test_transparent_png_is_flattened_on_white_and_large_photos_are_shrunk_for_storage() -> None:
    rgba = Image.new("RGBA", (2400, 1200), (0, 0, 0, 0))
    decoded = decode_image(_encode(rgba, "PNG"))
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((10, 10)) == (255, 255, 255)
    stored = Image.open(io.BytesIO(decoded.clean_jpeg()))
    assert max(stored.size) == STORED_MAX_SIDE


def test_phone_mpo_jpeg_is_read_as_its_first_frame() -> None:
    photo = Image.new("RGB", (64, 48), (200, 30, 30))
    depth = Image.new("RGB", (64, 48), (0, 0, 255))
    out = io.BytesIO()
    photo.save(out, format="MPO", save_all=True, append_images=[depth])
    decoded = decode_image(out.getvalue())
    assert decoded.source_format == "image/jpeg"
    red, _, blue = decoded.image.getpixel((32, 24))  # type: ignore[misc]
    assert red > 150 and blue < 80


def _jpeg_header_only(width: int, height: int) -> bytes:
    """SOI, a comment segment and a baseline frame header declaring ``width`` × ``height``."""
    comment = b"\xff\xfe" + struct.pack(">H", 6) + b"bomb"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + comment + sof + b"\xff\xd9"


def _webp_header_only(width: int, height: int) -> bytes:
    """An extended (VP8X) WebP header declaring a ``width`` × ``height`` canvas."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def test_refuses_jpeg_and_webp_bombs_from_the_header_alone() -> None:
    assert _reason(_jpeg_header_only(8000, 6000)) is RejectReason.TOO_MANY_PIXELS
    assert _reason(_jpeg_header_only(65_000, 65_000)) is RejectReason.TOO_MANY_PIXELS
    assert _reason(_webp_header_only(8000, 6000)) is RejectReason.TOO_MANY_PIXELS
    assert _reason(_webp_header_only(16_000, 16_000)) is RejectReason.TOO_MANY_PIXELS


def test_our_cap_is_below_pillows_so_pillow_never_warns_about_an_accepted_image() -> None:
    assert Image.MAX_IMAGE_PIXELS is not None and MAX_PIXELS <= Image.MAX_IMAGE_PIXELS


def test_decoding_in_threads_never_touches_the_process_warning_filters() -> None:
    """The filters are one list for the whole process; a decoder that toggled them made a
    Celery deprecation warning, raised in another thread, stop a worker."""
    photo = jpeg_bytes(Image.effect_noise((96, 96), 64).convert("RGB"))
    bomb = _png_header_only(8000, 6000)
    stop = threading.Event()
    failures: list[BaseException] = []

    def decode_until_stopped() -> None:
        try:
            while not stop.is_set():
                decode_image(photo)
                with contextlib.suppress(ImageRejected):
                    decode_image(bomb)
        except BaseException as exc:
            failures.append(exc)

    changed = raised = sent = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expected = list(warnings.filters)
        threads = [threading.Thread(target=decode_until_stopped) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                if warnings.filters != expected:
                    changed += 1
                try:
                    warnings.warn("unrelated", PendingDeprecationWarning, stacklevel=1)
                    sent += 1
                except PendingDeprecationWarning:
                    raised += 1
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    assert not failures
    assert (changed, raised) == (0, 0)
    assert sent > 0
    assert sum("unrelated" in str(w.message) for w in caught) == sent


@pytest.mark.parametrize("data", [b"\xff", b"\xff\xd8", b"\xff\xd8\xff", b"BM", b"\x00\x00\x01"])
def test_a_few_bytes_are_refused_as_not_an_image(data: bytes) -> None:
    """Some Pillow magic-byte tests read past a prefix this short; that is our refusal too."""
    with pytest.raises(ImageRejected):
        decode_image(data)


# --------------------------------------------------------------------------- bounded decoding


def test_a_small_png_of_40_megapixels_is_refused_before_pillow_opens_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real PNG (not just a header) of 8000 × 5000 under 200 KB. As RGB such a file took
    610 MB at its peak to decode before decoding was bounded (docs/benchmarks.md)."""
    data = _encode(Image.new("L", (8000, 5000), 90), "PNG", compress_level=9)
    assert len(data) < 200_000

    def never(*_: object) -> Image.Image:
        raise AssertionError("Pillow was asked to open an image refused from its header")

    monkeypatch.setattr(images, "_open", never)
    started = time.perf_counter()
    assert _reason(data) is RejectReason.TOO_MANY_PIXELS
    assert time.perf_counter() - started < 0.05


def test_the_pixel_cap_is_lower_for_formats_decoded_whole() -> None:
    """PNG and WebP decode whole; a JPEG decodes at reduced scale, so its cap is higher."""
    side = 6000  # 36 MP: over the PNG/WebP cap, under the JPEG cap
    assert MAX_PIXELS_FULL_DECODE < side * side <= MAX_PIXELS
    assert _reason(_png_header_only(side, side)) is RejectReason.TOO_MANY_PIXELS
    assert _reason(_webp_header_only(side, side)) is RejectReason.TOO_MANY_PIXELS
    # The JPEG passes the pixel check and fails later, as the empty shell it is.
    assert _reason(_jpeg_header_only(side, side)) is RejectReason.CORRUPT


def test_a_large_jpeg_is_decoded_at_reduced_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import JpegImagePlugin

    seen: list[tuple[tuple[int, int], tuple[int, int]]] = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: object) -> object:
        before = self.size
        result = draft(self, mode, size)  # type: ignore[arg-type]
        seen.append((before, self.size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    decoded = decode_image(jpeg_bytes(Image.new("RGB", (4000, 3000), (200, 40, 40))))
    assert decoded.image.size == (STORED_MAX_SIDE, 1200)
    # 4000 × 3000 → 2000 × 1500 out of the decoder: a quarter of the pixels, and still at
    # least 1600 on the long side. (A square 1600 box would have kept it whole.)
    assert seen[0] == ((4000, 3000), (2000, 1500))


def test_what_comes_out_is_never_larger_than_the_stored_copy() -> None:
    for image, fmt in (
        (Image.new("RGB", (3000, 1000), "green"), "PNG"),
        (Image.new("P", (2000, 2000), 3), "PNG"),
        (Image.new("RGB", (1700, 1700), "green"), "WEBP"),
    ):
        decoded = decode_image(_encode(image, fmt))
        assert max(decoded.image.size) == STORED_MAX_SIDE, (fmt, image.mode)
        assert decoded.image.mode == "RGB"


def test_orientation_is_applied_to_a_photo_that_was_shrunk() -> None:
    image = Image.new("RGB", (2400, 1200), "white")
    image.paste((255, 0, 0), (0, 0, 1200, 1200))  # left half red before rotation
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode_image(jpeg_bytes(image, exif=exif.tobytes()))
    assert decoded.image.size == (800, 1600)
    top_pixel = decoded.image.getpixel((400, 100))
    assert isinstance(top_pixel, tuple) and top_pixel[0] > 200 and top_pixel[1] < 60


def test_concurrent_decodes_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    lock = threading.Lock()
    running = most = 0
    real_open = images._open

    def slow_open(data: bytes, fmt: str) -> Image.Image:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return real_open(data, fmt)

    monkeypatch.setattr(images, "_open", slow_open)
    photo = jpeg_bytes(Image.new("RGB", (64, 64), "white"))
    threads = [
        threading.Thread(target=decode_image, args=(photo,))
        for _ in range(MAX_CONCURRENT_DECODES + 3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == MAX_CONCURRENT_DECODES
