"""The embedded classifier on real held-out photos, and its interpretation rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protocol.messages import Locale
from protocol.streams import OFFICIAL_PATH, Stream
from server.contracts import ScanInput
from server.vision.clarify import CLARIFY_BELOW, VisionClarifier, clarification_for
from server.vision.dataset import Sample, list_samples, three_way_split
from server.vision.embedded import (
    CONTAMINATION_MAX_CONFIDENCE,
    OVERRIDE_MIN,
    UNFAMILIAR_MAX_CONFIDENCE,
    EmbeddedClassifier,
    Evidence,
    interpret,
)
from server.vision.errors import ImageRejected
from server.vision.eval import SURE, accepted_streams
from server.vision.labelmap import FOLDERS, load_photo_streams
from server.vision.taxonomy import FOOD_INDICES, HEAD_KINDS, IMAGENET_GROUPS

CLASSES = sorted(HEAD_KINDS)
BANANA, WATER_BOTTLE, COFFEE_MUG, PLASTIC_BAG, LAPTOP = 954, 898, 504, 728, 620
POP_BOTTLE, GOBLET = 737, 572
LENS_CAP, LOUPE, RADIO = 622, 633, 754
LAMPSHADE, TABLE_LAMP, SHOWER_CAP, SHIELD = 619, 846, 793, 787


def _evidence(
    head: dict[str, float],
    imagenet: dict[int, float],
    classes: list[str] = CLASSES,
    novelty: float = 0.0,
) -> Evidence:
    h = np.array([head.get(c, 0.0) for c in classes], dtype=np.float32)
    rest = 1.0 - sum(imagenet.values())
    i = np.full(1000, rest / (1000 - len(imagenet)), dtype=np.float32)
    for index, p in imagenet.items():
        i[index] = p
    return Evidence(head=h / h.sum(), imagenet=i, novelty=novelty)


def test_trashnet_holdout_photos_get_the_right_stream(
    embedded: EmbeddedClassifier, validation_samples: list[Sample]
) -> None:
    """The first answer's stream on every TrashNet photo the head never saw, scored on each
    photo's own label where a person gave one (foil is general waste, a wrapper vinyl, whatever
    folder holds it). Measured 0.906 (0.869 before the foil and film classes; the folder-only
    figure the first head was held to, 0.92, counted foil as right metal: docs/benchmarks.md)."""
    own = load_photo_streams()
    hits = 0
    for sample in validation_samples:
        result = embedded.classify_bytes(sample.path.read_bytes())
        key = f"{sample.label}/{sample.path.name}"
        hits += result.stream in accepted_streams(key, FOLDERS[sample.label], own)
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
        assert result.model.startswith("efficientnet-lite0+waste-head@")
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


def test_food_overrides_a_head_never_taught_food_only_when_imagenet_is_sure() -> None:
    old = ["cardboard", "glass_bottle", "metal", "paper", "plastic", "trash"]
    sure = interpret(_evidence({"trash": 0.6, "paper": 0.4}, {BANANA: 0.8}, old), old, "m")
    assert sure.stream is Stream.FOOD and sure.label == "food_waste"
    assert sure.alternatives[0].stream is Stream.GENERAL
    unsure = interpret(
        _evidence({"trash": 0.6, "paper": 0.4}, {BANANA: OVERRIDE_MIN - 0.1}, old), old, "m"
    )
    assert unsure.stream is Stream.GENERAL


def test_a_head_taught_food_keeps_its_answer_but_doubts_it() -> None:
    """The head learnt food from photos; ImageNet's banana no longer overrules it, but it
    still counts as evidence of a look-alike in another stream."""
    c = interpret(_evidence({"trash": 0.9, "food": 0.1}, {BANANA: 0.6}), CLASSES, "m")
    assert c.stream is Stream.GENERAL
    assert c.confidence <= 0.4 + 1e-6
    assert c.alternatives[0].stream is Stream.FOOD


def test_a_goblet_is_never_a_confident_glass_bottle() -> None:
    """Wine glasses go to 불연성 bags: ImageNet's goblet turns the head's glass into a drinking
    glass, and even faint goblet evidence keeps the bottle answer from sounding sure."""
    strong = interpret(_evidence({"glass_bottle": 0.99}, {GOBLET: 0.6}), CLASSES, "m")
    assert (strong.label, strong.stream) == ("drinking_glass", Stream.NON_COMBUSTIBLE)
    faint = interpret(_evidence({"glass_bottle": 0.99}, {GOBLET: 0.15}), CLASSES, "m")
    assert faint.stream is Stream.GLASS
    assert faint.confidence <= 0.85 + 1e-6
    assert Stream.NON_COMBUSTIBLE in {a.stream for a in faint.alternatives}


def test_clear_glass_without_shape_evidence_is_always_asked_about() -> None:
    c = interpret(_evidence({"clear_glass": 0.99}, {}), CLASSES, "m")
    assert c.label == "clear_glass" and c.confidence < CLARIFY_BELOW
    bottle = interpret(_evidence({"clear_glass": 0.95}, {WATER_BOTTLE: 0.7}), CLASSES, "m")
    assert (bottle.label, bottle.stream) == ("glass_bottle", Stream.GLASS)


def test_a_photo_unlike_the_training_photos_is_asked_about() -> None:
    familiar = interpret(_evidence({"metal": 0.99}, {}, novelty=0.8), CLASSES, "m")
    assert familiar.confidence > 0.9
    strange = interpret(_evidence({"metal": 0.99}, {}, novelty=1.3), CLASSES, "m")
    assert strange.stream is Stream.METAL
    assert strange.confidence == UNFAMILIAR_MAX_CONFIDENCE < CLARIFY_BELOW


def test_a_battery_goes_to_the_battery_stream_with_no_soiling_or_mixing_signal() -> None:
    c = interpret(_evidence({"battery": 0.97, "metal": 0.03}, {}), CLASSES, "m")
    assert (c.label, c.stream) == ("battery", Stream.BATTERY)
    assert c.contamination is None and c.mixed is None


def test_electronics_evidence_never_takes_a_battery_out_of_the_battery_stream() -> None:
    """Battery packs look like radios to ImageNet: the head's battery stands, asked about with
    small electronics offered, instead of becoming electronics (or a sure battery)."""
    c = interpret(_evidence({"battery": 0.99, "metal": 0.01}, {RADIO: 0.7}), CLASSES, "m")
    assert (c.label, c.stream) == ("battery", Stream.BATTERY)
    assert c.confidence <= 0.3 + 1e-6
    assert c.alternatives[0].stream is Stream.ELECTRONICS
    question = clarification_for(c, Locale.EN)
    assert question is not None
    assert {Stream.BATTERY, Stream.ELECTRONICS} <= {ch.stream for ch in question.choices}


@pytest.mark.parametrize("head_class", ["metal", "trash"])
def test_a_small_round_metal_object_is_never_a_sure_metal_and_battery_is_offered(
    head_class: str,
) -> None:
    """A coin cell reads as a lens cap or a loupe to ImageNet and as metal to the head: the
    answer stays (most such photos are lids and cans) but is asked about, battery bin first."""
    c = interpret(_evidence({head_class: 0.97}, {LENS_CAP: 0.25, LOUPE: 0.2}), CLASSES, "m")
    assert c.stream is HEAD_KINDS[head_class].stream
    assert c.confidence <= 0.55 + 1e-6 < CLARIFY_BELOW
    assert c.alternatives[0].stream is Stream.BATTERY
    question = clarification_for(c, Locale.KO)
    assert question is not None
    assert question.choices[1].stream is Stream.BATTERY
    plain = interpret(_evidence({head_class: 0.97}, {}), CLASSES, "m")
    assert plain.confidence > 0.9


def test_foil_that_the_head_calls_metal_is_general_waste_or_asked_about() -> None:
    """Crumpled foil reads as a shower cap to ImageNet, a foil dish as a shield, and as metal
    to the head: foil is general waste (알루미늄 호일, 은박 접시), never a sure metal answer."""
    foil = interpret(_evidence({"metal": 0.99}, {SHOWER_CAP: 0.4}), CLASSES, "m")
    assert (foil.label, foil.stream) == ("aluminium_foil", Stream.GENERAL)
    faint = interpret(_evidence({"metal": 0.99}, {SHIELD: 0.15}), CLASSES, "m")
    assert faint.stream is Stream.METAL and faint.confidence <= 0.85 + 1e-6
    assert faint.alternatives[0].stream is Stream.GENERAL
    wrapper = interpret(_evidence({"trash": 0.99}, {SHOWER_CAP: 0.35}), CLASSES, "m")
    assert wrapper.stream is Stream.GENERAL and wrapper.confidence < CLARIFY_BELOW
    question = clarification_for(wrapper, Locale.EN)
    assert question is not None and Stream.VINYL in {ch.stream for ch in question.choices}


@pytest.mark.parametrize("head_class", ["clear_glass", "metal", "trash", "plastic"])
def test_a_lamp_seen_by_imagenet_is_asked_about_with_the_lamp_bin_offered(head_class: str) -> None:
    """No photo here holds a tube or a bulb, so the head cannot name one: where ImageNet sees a
    lamp, whatever the head says is asked about, and picking the lamp answer gives the lamp
    stream (its coaching and the lamp and battery bins follow from the stream)."""
    evidence = _evidence({head_class: 0.97}, {TABLE_LAMP: 0.2, LAMPSHADE: 0.15})
    c = interpret(evidence, CLASSES, "m")
    assert c.confidence <= 0.65 + 1e-6 < CLARIFY_BELOW
    assert c.alternatives[0].stream is Stream.LAMP
    clarifier = VisionClarifier()
    question = clarifier.question(c, Locale.KO)
    assert question is not None
    lamp = next(ch for ch in question.choices if ch.stream is Stream.LAMP)
    picked = clarifier.resolve(c, question, lamp.label)
    assert picked is not None
    assert (picked.label, picked.stream, picked.confirmed) == ("lamp", Stream.LAMP, True)
    assert (picked.category.major, picked.category.middle) == OFFICIAL_PATH[Stream.LAMP]
    # Without the lamp evidence nothing changes.
    plain = interpret(_evidence({head_class: 0.97}, {}), CLASSES, "m")
    assert Stream.LAMP not in {a.stream for a in plain.alternatives}


@pytest.mark.parametrize(
    ("index", "stream", "classes"),
    [
        (PLASTIC_BAG, Stream.VINYL, [c for c in CLASSES if c != "film"]),
        (LAPTOP, Stream.ELECTRONICS, CLASSES),
    ],
)
def test_other_override_groups(index: int, stream: Stream, classes: list[str]) -> None:
    c = interpret(_evidence({"plastic": 0.7, "trash": 0.3}, {index: 0.7}, classes), classes, "m")
    assert c.stream is stream


def test_a_head_taught_film_keeps_its_answer_against_a_plastic_bag_but_doubts_it() -> None:
    """Since the head has a film class, ImageNet's plastic bag is evidence, not the answer (as
    for food and clothing): the tune photos were answered at least as well that way
    (docs/benchmarks.md). The container answer is asked about, with film offered first."""
    c = interpret(_evidence({"plastic": 0.7, "trash": 0.3}, {PLASTIC_BAG: 0.7}), CLASSES, "m")
    assert c.stream is Stream.PLASTIC and c.confidence <= 0.3 + 1e-6
    assert c.alternatives[0].stream is Stream.VINYL
    film = interpret(_evidence({"film": 0.9, "plastic": 0.1}, {PLASTIC_BAG: 0.7}), CLASSES, "m")
    assert (film.label, film.stream) == ("plastic_film", Stream.VINYL)


def test_imagenet_refines_material_into_objects() -> None:
    pet = interpret(
        _evidence({"plastic": 0.9, "glass_bottle": 0.1}, {WATER_BOTTLE: 0.6}), CLASSES, "m"
    )
    assert (pet.label, pet.stream) == ("pet_bottle", Stream.CLEAR_PET)
    assert pet.mixed is not None and pet.mixed.value == "yes"
    assert any(p.value.startswith("cap:") for p in pet.parts)
    assert pet.shape is not None and pet.shape.value == "bottle"
    # Clear or tinted is beyond these models: the confidence stays low enough to ask,
    # and coloured PET (plastic containers) is the first alternative.
    assert pet.confidence <= 0.65
    assert pet.alternatives[0].stream is Stream.PLASTIC
    assert pet.alternatives[0].confidence > 0.2
    mug = interpret(
        _evidence({"glass_bottle": 0.8, "plastic": 0.2}, {COFFEE_MUG: 0.7}), CLASSES, "m"
    )
    assert mug.stream is Stream.NON_COMBUSTIBLE


def test_a_plastic_bottle_of_any_kind_is_asked_about_not_put_with_plastics() -> None:
    """Clear (its own bin) or coloured (plastic containers) is beyond the models for a soft-drink
    bottle as much as for a water bottle: same kind, same question, never a confident answer."""
    pop = interpret(
        _evidence({"plastic": 0.95, "glass_bottle": 0.05}, {POP_BOTTLE: 0.9}), CLASSES, "m"
    )
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


def test_every_head_class_maps_to_its_official_path() -> None:
    expected = {
        "battery": Stream.BATTERY,
        "cardboard": Stream.PAPER,
        "carton": Stream.PAPER_PACK,
        "clear_glass": Stream.GLASS,
        "clothes": Stream.CLOTHING,
        "food": Stream.FOOD,
        "glass_bottle": Stream.GLASS,
        "metal": Stream.METAL,
        "paper": Stream.PAPER,
        "plastic": Stream.PLASTIC,
        "shoes": Stream.CLOTHING,
        "textile": Stream.CLOTHING,
        "trash": Stream.GENERAL,
        "wood": Stream.GENERAL,
        # Taught by photos labelled one by one (labelmap.LOOKALIKE_CLASSES), not folders.
        "foil": Stream.GENERAL,
        "film": Stream.VINYL,
    }
    assert set(expected) == set(HEAD_KINDS)
    assert {f.head_class for f in FOLDERS.values()} == set(HEAD_KINDS) - {"foil", "film"}
    for name, stream in expected.items():
        kind = HEAD_KINDS[name]
        assert kind.stream is stream
        assert (kind.category.major, kind.category.middle) == OFFICIAL_PATH[stream]


def test_imagenet_groups_are_disjoint_and_in_range() -> None:
    seen: set[int] = set()
    for group in IMAGENET_GROUPS:
        assert not seen & group.indices, group.name
        assert all(0 <= i < 1000 for i in group.indices)
        seen |= group.indices


MORE_PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "more_photos"


@pytest.mark.skipif(not MORE_PHOTOS.is_dir(), reason=f"{MORE_PHOTOS} is not present")
@pytest.mark.parametrize(("folder", "floor"), [("battery", 0.94), ("white-glass", 0.75)])
def test_held_out_batteries_and_clear_glass_get_the_right_stream(
    embedded: EmbeddedClassifier, folder: str, floor: float
) -> None:
    """The kinds where a wrong bin does most harm, on photos never trained or tuned on
    (measured 0.954 and 0.812, docs/benchmarks.md; the floors leave room for a retrained head,
    not for a regression), and none wrongly named with a confidence nobody would question.
    White glass is scored per photo where a person labelled it."""
    samples = [s for s in list_samples(MORE_PHOTOS) if s.label == folder]
    parts = three_way_split(samples)
    own = load_photo_streams()
    hits = []
    sure_mistakes = []
    for sample in samples:
        if parts[sample.path] != "holdout":
            continue
        result = embedded.classify_bytes(sample.path.read_bytes())
        key = f"{folder}/{sample.path.name}"
        hits.append(result.stream in accepted_streams(key, FOLDERS[folder], own))
        if not hits[-1] and result.confidence > SURE:
            sure_mistakes.append((key, result.stream, result.confidence))
    assert len(hits) > 50
    assert sure_mistakes == []
    assert sum(hits) / len(hits) >= floor
