"""The frame analyser on a real photo: decoded small, classified, reused while unchanged."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from server.live.analyser import DECODE_SIDE, FrameAnalyser
from server.vision.embedded import EmbeddedClassifier
from server.vision.errors import ImageRejected

TRASHNET = Path(__file__).resolve().parents[3] / "shared" / "data" / "trashnet"
PHOTO = TRASHNET / "glass" / "glass1.jpg"


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=75)
    return out.getvalue()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    if not PHOTO.exists():
        pytest.skip(f"{PHOTO} not found")
    return Image.open(PHOTO).convert("RGB").resize((640, 480))


async def test_a_still_picture_reuses_its_classification_a_moved_one_does_not(
    photo: Image.Image,
) -> None:
    analyser = FrameAnalyser(EmbeddedClassifier(), threads=1)
    try:
        first = await analyser.analyse(jpeg(photo), None)
        assert first.classification.label == "glass_bottle"
        assert first.content_type == "image/jpeg"
        same = await analyser.analyse(jpeg(photo), first.measured.thumb, first.classified)
        assert same.classified is first.classified
        assert same.measured.quality.motion is not None and same.measured.quality.motion < 0.01
        moved = ImageChops.offset(photo, 200, 60)
        other = await analyser.analyse(jpeg(moved), same.measured.thumb, same.classified)
        assert other.classified is not first.classified
        with pytest.raises(ImageRejected):
            await analyser.analyse(b"not an image", None)
    finally:
        analyser.close()


def test_frames_are_decoded_no_larger_than_the_measures_need(photo: Image.Image) -> None:
    from server.vision.images import decode_image

    decoded = decode_image(jpeg(photo), max_side=DECODE_SIDE)
    assert max(decoded.image.size) == DECODE_SIDE
