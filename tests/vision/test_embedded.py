"""The embedded classifier on real, held-out TrashNet photos, and its interpretation rules."""

from __future__ import annotations

import numpy as np
import pytest

from protocol.messages import Locale
from protocol.streams import OFFICIAL_PATH, Stream
from server.contracts import ScanInput
from server.vision.dataset import Sample
from server.vision.embedded import (
    CONTAMINATION_MAX_CONFIDENCE,
    OVERRIDE_MIN,
    EmbeddedClassifier,
    Evidence,
    interpret,
)
from server.vision.errors import ImageRejected
from server.vision.taxonomy import FOOD_INDICES, IMAGENET_GROUPS, TRASHNET

CLASSES = ["cardboard", "glass", "metal", "paper", "plastic", "trash"]
BANANA, WATER_BOTTLE, COFFEE_MUG, PLASTIC_BAG, LAPTOP = 954, 898, 504, 728, 620
POP_BOTTLE = 737


def _evidence(head: dict[str, float], imagenet: dict[int, float]) -> Evidence:
    h = np.array([head.get(c, 0.0) for c in CLASSES], dtype=np.float32)
    rest = 1.0 - sum(imagenet.values())
    i = np.full(1000, rest / (1000 - len(imagenet)), dtype=np.float32)
    for index, p in imagenet.items():
        i[index] = p
    return Evidence(head=h / h.sum(), imagenet=i)


def test_holdout_photos_are_classified_right(
    embedded: EmbeddedClassifier, validation_samples: list[Sample]
) -> None:
    """Top-1 over the head's six classes on every photo the head never saw (the issue's bar)."""
    hits = 0
    for sample in validation_samples:
        evidence, _ = embedded.analyse_bytes(sample.path.read_bytes())
        hits += embedded.head_classes[int(evidence.head.argmax())] == sample.label
    assert hits / len(validation_samples) >= 0.90


async def test_classify_returns_a_complete_classification(
    embedded: EmbeddedClassifier, validation_samples: list[Sample]
) -> None:
    glass = [s for s in validation_samples if s.label == "glass"][:5]
    streams = []
    for sample in glass:
        scan = ScanInput(
            scan_id="s",
            request_id="r",
            session_id="x",
            user_id="u",
            locale=Locale.EN,
            image=sample.path.read_bytes(),
            content_type="image/jpeg",
        )
        result = await embedded.classify(scan)
        streams.append(result.stream)
        major, middle = OFFICIAL_PATH[result.stream]
        assert (result.category.major, result.category.middle) == (major, middle)
        assert result.model.startswith("efficientnet-lite0+trashnet-head@")
        assert result.material is not None and result.shape is not None
        assert result.contamination is not None
        assert result.contamination.confidence <= CONTAMINATION_MAX_CONFIDENCE
        assert result.stream not in {a.stream for a in result.alternatives}
        if result.stream is Stream.GLASS:
            assert result.material.value == "glass"
            assert result.mixed is not None
    assert streams.count(Stream.GLASS) >= 4, streams


def test_refuses_bytes_that_are_not_an_image(embedded: EmbeddedClassifier) -> None:
    with pytest.raises(ImageRejected):
        embedded.classify_bytes(b"GIF89a not really")


def test_head_class_stands_with_its_stream_probability() -> None:
    c = interpret(_evidence({"cardboard": 0.5, "paper": 0.3, "plastic": 0.2}, {}), CLASSES, "m")
    assert c.label == "cardboard" and c.stream is Stream.PAPER
    # Cardboard and paper are the same stream: the stream is 80 % likely.
    assert c.confidence == pytest.approx(0.8, abs=1e-3)
    assert c.alternatives[0].stream is Stream.PLASTIC


def test_food_overrides_the_head_only_when_imagenet_is_sure() -> None:
    sure = interpret(_evidence({"trash": 0.6, "paper": 0.4}, {BANANA: 0.8}), CLASSES, "m")
    assert sure.stream is Stream.FOOD and sure.label == "food_waste"
    assert sure.alternatives[0].stream is Stream.GENERAL
    unsure = interpret(
        _evidence({"trash": 0.6, "paper": 0.4}, {BANANA: OVERRIDE_MIN - 0.1}), CLASSES, "m"
    )
    assert unsure.stream is Stream.GENERAL


@pytest.mark.parametrize(
    ("index", "stream"),
    [(PLASTIC_BAG, Stream.VINYL), (LAPTOP, Stream.ELECTRONICS)],
)
def test_other_override_groups(index: int, stream: Stream) -> None:
    c = interpret(_evidence({"plastic": 0.7, "trash": 0.3}, {index: 0.7}), CLASSES, "m")
    assert c.stream is stream


def test_imagenet_refines_material_into_objects() -> None:
    pet = interpret(_evidence({"plastic": 0.9, "glass": 0.1}, {WATER_BOTTLE: 0.6}), CLASSES, "m")
    assert (pet.label, pet.stream) == ("pet_bottle", Stream.CLEAR_PET)
    assert pet.mixed is not None and pet.mixed.value == "yes"
    assert any(p.value.startswith("cap:") for p in pet.parts)
    assert pet.shape is not None and pet.shape.value == "bottle"
    # Clear or tinted is beyond these models: the confidence stays low enough to ask,
    # and coloured PET (plastic containers) is the first alternative.
    assert pet.confidence <= 0.65
    assert pet.alternatives[0].stream is Stream.PLASTIC
    assert pet.alternatives[0].confidence > 0.2
    mug = interpret(_evidence({"glass": 0.8, "plastic": 0.2}, {COFFEE_MUG: 0.7}), CLASSES, "m")
    assert mug.stream is Stream.NON_COMBUSTIBLE


def test_a_plastic_bottle_of_any_kind_is_asked_about_not_put_with_plastics() -> None:
    """Clear (its own bin) or coloured (plastic containers) is beyond the models for a soft-drink
    bottle as much as for a water bottle: same kind, same question, never a confident answer."""
    pop = interpret(_evidence({"plastic": 0.95, "glass": 0.05}, {POP_BOTTLE: 0.9}), CLASSES, "m")
    assert (pop.label, pop.stream) == ("pet_bottle", Stream.CLEAR_PET)
    assert pop.confidence <= 0.65
    assert pop.alternatives[0].stream is Stream.PLASTIC


def test_food_on_a_container_reads_as_contamination_with_modest_confidence() -> None:
    food = sorted(FOOD_INDICES)[:3]
    soiled = interpret(
        _evidence({"plastic": 0.9, "trash": 0.1}, {food[0]: 0.1, food[1]: 0.1, food[2]: 0.1}),
        CLASSES,
        "m",
    )
    assert soiled.stream is Stream.PLASTIC  # food is not the top ImageNet class: no override
    assert soiled.contamination is not None and soiled.contamination.value == "heavy"
    assert soiled.contamination.confidence <= CONTAMINATION_MAX_CONFIDENCE
    clean = interpret(_evidence({"plastic": 0.9, "trash": 0.1}, {}), CLASSES, "m")
    assert clean.contamination is not None and clean.contamination.value == "clean"


def test_every_trashnet_class_maps_to_its_official_path() -> None:
    expected = {
        "cardboard": Stream.PAPER,
        "paper": Stream.PAPER,
        "glass": Stream.GLASS,
        "metal": Stream.METAL,
        "plastic": Stream.PLASTIC,
        "trash": Stream.GENERAL,
    }
    for name, stream in expected.items():
        kind = TRASHNET[name]
        assert kind.stream is stream
        assert (kind.category.major, kind.category.middle) == OFFICIAL_PATH[stream]


def test_imagenet_groups_are_disjoint_and_in_range() -> None:
    seen: set[int] = set()
    for group in IMAGENET_GROUPS:
        assert not seen & group.indices, group.name
        assert all(0 <= i < 1000 for i in group.indices)
        seen |= group.indices
