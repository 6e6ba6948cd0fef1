"""The vision cache: the same person's same photo is answered without the backend; nobody is
ever answered with another person's result."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from protocol.messages import Classification, Locale, OfficialCategory
from protocol.streams import Stream
from server.contracts import ScanInput
from server.settings import OpenAISettings
from server.vision import images
from server.vision.cache import CachedVision, ImageClassifier, ResultCache, cache_key
from server.vision.dataset import Sample
from server.vision.embedded import EmbeddedClassifier
from server.vision.errors import ImageRejected
from server.vision.images import DecodedImage
from server.vision.openai_backend import OpenAIVisionClassifier
from tests.vision.conftest import jpeg_bytes


def _scan(image: bytes, user_id: str = "u") -> ScanInput:
    return ScanInput(
        scan_id="s1",
        request_id="r1",
        session_id="sess",
        user_id=user_id,
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

    async def classify_image(self, scan: ScanInput, decoded: DecodedImage) -> Classification:
        self.calls += 1
        return _result(f"item{self.calls}", self.model)


class LabelByFolder:
    """A VisionStage that answers a TrashNet photo with its folder (its true class)."""

    def __init__(self, photos: dict[bytes, str]) -> None:
        self.photos = photos
        self.calls = 0

    async def classify_image(self, scan: ScanInput, decoded: DecodedImage) -> Classification:
        self.calls += 1
        return _result(self.photos[scan.image])


async def test_the_same_photo_from_the_same_user_is_answered_from_the_cache(
    validation_samples: list[Sample],
) -> None:
    inner = CountingStage()
    vision = CachedVision(inner)
    data = validation_samples[0].path.read_bytes()
    a = await vision.classify(_scan(data))
    b = await vision.classify(_scan(data))
    assert inner.calls == 1 and b == a
    assert (vision.cache.hits, vision.cache.misses) == (1, 1)


async def test_another_users_photo_is_never_answered_with_this_users_result(
    trashnet_dir: Path,
) -> None:
    # Two real photos of different items whose 64-bit dHashes are equal: the perceptual cache
    # answered the paper with "cardboard", to whoever sent it.
    cardboard = (trashnet_dir / "cardboard" / "cardboard208.jpg").read_bytes()
    paper = (trashnet_dir / "paper" / "paper361.jpg").read_bytes()
    inner = LabelByFolder({cardboard: "cardboard", paper: "paper"})
    vision = CachedVision(inner)
    assert (await vision.classify(_scan(cardboard, user_id="a"))).label == "cardboard"
    assert (await vision.classify(_scan(paper, user_id="b"))).label == "paper"
    # Not even the same bytes are shared across users.
    assert (await vision.classify(_scan(cardboard, user_id="b"))).label == "cardboard"
    assert inner.calls == 3 and vision.cache.hits == 0
    # Nor does one user's own similar photo answer for another of their photos.
    assert (await vision.classify(_scan(paper, user_id="a"))).label == "paper"
    assert inner.calls == 4


async def test_a_retaken_photo_is_classified_again(validation_samples: list[Sample]) -> None:
    inner = CountingStage()
    vision = CachedVision(inner)
    path = validation_samples[0].path
    image = Image.open(path).convert("RGB")
    retaken = jpeg_bytes(ImageEnhance.Brightness(image).enhance(1.08), quality=70)
    await vision.classify(_scan(path.read_bytes()))
    await vision.classify(_scan(retaken))
    assert inner.calls == 2


async def test_fallback_answers_are_not_cached(validation_samples: list[Sample]) -> None:
    inner = CountingStage(model="efficientnet-lite0+x (fallback: timeout)")
    vision = CachedVision(inner)
    data = validation_samples[0].path.read_bytes()
    await vision.classify(_scan(data))
    await vision.classify(_scan(data))
    assert inner.calls == 2
    assert len(vision.cache) == 0


def test_lru_evicts_the_least_recently_used() -> None:
    cache = ResultCache(capacity=2)
    a, b, c = (cache_key(_scan(data)) for data in (b"a", b"b", b"c"))
    cache.put(a, _result("a"))
    cache.put(b, _result("b"))
    assert cache.get(a) is not None  # a is now the most recent
    cache.put(c, _result("c"))  # evicts b
    assert cache.get(b) is None
    found = cache.get(a)
    assert found is not None and found.label == "a"
    assert len(cache) == 2


async def test_bytes_that_are_not_an_image_never_reach_the_backend() -> None:
    inner = CountingStage()
    vision = CachedVision(inner)
    with pytest.raises(ImageRejected):
        await vision.classify(_scan(b"<html>not a photo</html>"))
    assert inner.calls == 0


@pytest.mark.parametrize("backend", ["embedded", "openai falling back"])
async def test_a_scan_decodes_its_photo_once(
    backend: str, embedded: EmbeddedClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache decodes, the backend (and the OpenAI backend's fallback) use that decode: a
    large PNG used to be decoded twice per scan, three times when OpenAI failed."""
    opened = 0
    real_open = images._open

    def counting_open(data: bytes, fmt: str) -> Image.Image:
        nonlocal opened
        opened += 1
        return real_open(data, fmt)

    monkeypatch.setattr(images, "_open", counting_open)
    inner: ImageClassifier = embedded
    if backend != "embedded":
        inner = OpenAIVisionClassifier(OpenAISettings(), fallback=embedded)  # no key: falls back
    photo = io.BytesIO()
    Image.new("RGB", (2400, 1800), (30, 120, 40)).save(photo, format="PNG")
    result = await CachedVision(inner).classify(_scan(photo.getvalue()))
    assert result.model.startswith("efficientnet")
    assert opened == 1
