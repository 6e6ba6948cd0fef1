"""Perceptual-hash cache: the same item photographed twice is answered without the backend."""

from __future__ import annotations

import io
from itertools import combinations
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from protocol.messages import Classification, Locale, OfficialCategory
from protocol.streams import Stream
from server.pipeline.stages import ScanInput
from server.vision.cache import CachedVision, PerceptualCache, dhash, hamming
from server.vision.dataset import Sample
from server.vision.errors import ImageRejected
from tests.vision.conftest import jpeg_bytes


def _scan(image: bytes) -> ScanInput:
    return ScanInput(
        scan_id="s1",
        request_id="r1",
        session_id="sess",
        user_id="u",
        locale=Locale.KO,
        image=image,
        content_type="image/jpeg",
    )


def _result(label: str, model: str = "counting") -> Classification:
    return Classification(
        label=label,
        name_ko=label,
        name_en=label,
        stream=Stream.GLASS,
        category=OfficialCategory(major="재활용폐기물", middle="유리병"),
        confidence=0.9,
        model=model,
    )


class CountingStage:
    """A VisionStage that counts its calls (the cache, not the backend, is under test)."""

    def __init__(self, model: str = "counting") -> None:
        self.calls = 0
        self.model = model

    async def classify(self, scan: ScanInput) -> Classification:
        self.calls += 1
        return _result(f"item{self.calls}", self.model)


def _retake(path: Path) -> bytes:
    """The same photo as a phone might send it again: rescaled, brighter, re-encoded."""
    image = Image.open(path).convert("RGB")
    image = image.resize((image.width * 9 // 10, image.height * 9 // 10))
    image = ImageEnhance.Brightness(image).enhance(1.08)
    return jpeg_bytes(image, quality=70)


def test_same_photo_stays_within_the_threshold_different_photos_do_not(
    validation_samples: list[Sample],
) -> None:
    cache = PerceptualCache()
    sample = validation_samples[:120:4]
    originals = {s.path: dhash(Image.open(s.path).convert("RGB")) for s in sample}
    for s in sample:
        retaken = dhash(Image.open(io.BytesIO(_retake(s.path))).convert("RGB"))
        assert hamming(originals[s.path], retaken) <= cache.max_distance, s.path
    for (a, ha), (b, hb) in combinations(originals.items(), 2):
        assert hamming(ha, hb) > cache.max_distance, (a, b)


async def test_cached_vision_answers_a_retaken_photo_without_the_backend(
    validation_samples: list[Sample],
) -> None:
    inner = CountingStage()
    vision = CachedVision(inner)
    first, other = validation_samples[0].path, validation_samples[-1].path
    a = await vision.classify(_scan(first.read_bytes()))
    b = await vision.classify(_scan(_retake(first)))
    assert inner.calls == 1
    assert b == a
    c = await vision.classify(_scan(other.read_bytes()))
    assert inner.calls == 2
    assert c.label != a.label
    assert (vision.cache.hits, vision.cache.misses) == (1, 2)


async def test_fallback_answers_are_not_cached(validation_samples: list[Sample]) -> None:
    inner = CountingStage(model="efficientnet-lite0+x (fallback: timeout)")
    vision = CachedVision(inner)
    data = validation_samples[0].path.read_bytes()
    await vision.classify(_scan(data))
    await vision.classify(_scan(data))
    assert inner.calls == 2
    assert len(vision.cache) == 0


def test_lru_evicts_the_least_recently_used() -> None:
    cache = PerceptualCache(capacity=2, max_distance=0)
    cache.put(0b0001, _result("a"))
    cache.put(0b1110 << 8, _result("b"))
    assert cache.get(0b0001) is not None  # a is now the most recent
    cache.put(0xFF << 32, _result("c"))  # evicts b
    assert cache.get(0b1110 << 8) is None
    found = cache.get(0b0001)
    assert found is not None and found.label == "a"
    assert len(cache) == 2


async def test_bytes_that_are_not_an_image_never_reach_the_backend() -> None:
    inner = CountingStage()
    vision = CachedVision(inner)
    with pytest.raises(ImageRejected):
        await vision.classify(_scan(b"<html>not a photo</html>"))
    assert inner.calls == 0
