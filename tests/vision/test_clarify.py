"""The clarify decision: a short question with 2–5 choices only when the model is unsure."""

from __future__ import annotations

from protocol.messages import Alternative, Classification, Locale, OfficialCategory
from protocol.streams import OFFICIAL_PATH, Stream
from server.vision.clarify import CLARIFY_BELOW, MAX_CHOICES, clarification_for


def _classification(
    label: str, stream: Stream, confidence: float, alternatives: list[Alternative]
) -> Classification:
    major, middle = OFFICIAL_PATH[stream]
    return Classification(
        label=label,
        name_ko=label,
        name_en=label,
        stream=stream,
        category=OfficialCategory(major=major, middle=middle),
        confidence=confidence,
        alternatives=alternatives,
        model="test",
    )


UNSURE = _classification(
    "plastic_container",
    Stream.PLASTIC,
    0.48,
    [
        Alternative(label="glass_bottle", stream=Stream.GLASS, confidence=0.31),
        Alternative(label="general_waste", stream=Stream.GENERAL, confidence=0.12),
        Alternative(label="metal_can", stream=Stream.METAL, confidence=0.05),
    ],
)


def test_no_question_when_confident() -> None:
    sure = UNSURE.model_copy(update={"confidence": CLARIFY_BELOW})
    assert clarification_for(sure, Locale.KO) is None
    assert clarification_for(sure.model_copy(update={"confidence": 0.99}), Locale.EN) is None


def test_unsure_asks_with_the_likeliest_streams_first_and_an_escape() -> None:
    question = clarification_for(UNSURE, Locale.EN)
    assert question is not None
    assert question.locale is Locale.EN and question.question.endswith("?")
    streams = [choice.stream for choice in question.choices]
    assert 2 <= len(streams) <= MAX_CHOICES
    # The strong alternative, then the kind's commonest look-alike (clear PET), then the rest.
    assert streams[:4] == [Stream.PLASTIC, Stream.GLASS, Stream.CLEAR_PET, Stream.GENERAL]
    assert streams[-1] is Stream.OTHER
    assert len(set(streams)) == len(streams)
    assert question.choices[0].label == "plastic_container"


def test_question_and_choices_in_korean() -> None:
    question = clarification_for(UNSURE, Locale.KO)
    assert question is not None
    hangul = [c for c in question.question if "가" <= c <= "힣"]
    assert hangul, question.question
    assert all(choice.text(Locale.KO) == choice.text_ko for choice in question.choices)
    assert question.choices[0].text_ko != question.choices[0].text_en


def test_kind_specific_confusions_fill_in_when_the_model_offers_no_alternative() -> None:
    lone = _classification("pet_bottle", Stream.CLEAR_PET, 0.4, [])
    question = clarification_for(lone, Locale.EN)
    assert question is not None
    # A PET bottle is either clear (its own stream) or coloured (plastic containers).
    assert [c.stream for c in question.choices] == [Stream.CLEAR_PET, Stream.PLASTIC, Stream.OTHER]
    assert "clear" in question.question.lower()


def test_choice_labels_are_unique_for_every_kind_the_classifier_names() -> None:
    """The person's answer names a choice by label, so labels must never repeat."""
    from server.vision.taxonomy import HEAD_KINDS, IMAGENET_GROUPS

    kinds = list(HEAD_KINDS.values())
    for group in IMAGENET_GROUPS:
        kinds.extend(k for k in [group.override, *group.refine.values()] if k is not None)
    for kind in kinds:
        alternatives = [
            Alternative(label=other.label, stream=other.stream, confidence=0.1)
            for other in HEAD_KINDS.values()
            if other.stream is not kind.stream
        ][:3]
        for locale in Locale:
            question = clarification_for(
                _classification(kind.label, kind.stream, 0.3, alternatives), locale
            )
            assert question is not None
            labels = [choice.label for choice in question.choices]
            assert len(labels) == len(set(labels)), (kind.label, labels)
            assert 2 <= len(labels) <= MAX_CHOICES


def test_coloured_pet_bottle_offers_clear_pet_under_its_own_label() -> None:
    coloured = _classification("pet_bottle", Stream.PLASTIC, 0.5, [])
    question = clarification_for(coloured, Locale.KO)
    assert question is not None
    assert [(c.label, c.stream) for c in question.choices][:2] == [
        ("pet_bottle", Stream.PLASTIC),
        ("clear_pet", Stream.CLEAR_PET),
    ]


def test_each_kind_is_defined_once() -> None:
    """A label names one kind: copies of a kind drift apart (a can's choices once did)."""
    from server.vision.taxonomy import HEAD_KINDS, IMAGENET_GROUPS

    by_label: dict[str, set[int]] = {}
    kinds = list(HEAD_KINDS.values())
    for group in IMAGENET_GROUPS:
        kinds.extend(k for k in [group.override, *group.refine.values()] if k is not None)
    for kind in kinds:
        by_label.setdefault(kind.label, set()).add(id(kind))
    assert {label: len(ids) for label, ids in by_label.items() if len(ids) > 1} == {}


def test_the_commonest_look_alike_is_always_offered() -> None:
    """Where a wrong answer does most harm, the right bin is always a choice: a drinking glass
    for glass, foil (general) for metal, film for general waste, the battery bin for devices,
    however strong the other alternatives."""
    from server.vision.taxonomy import HEAD_KINDS, SMALL_ELECTRONICS

    must = {
        "glass_bottle": Stream.NON_COMBUSTIBLE,
        "clear_glass": Stream.NON_COMBUSTIBLE,
        "metal_can": Stream.GENERAL,
        "general_waste": Stream.VINYL,
        "small_electronics": Stream.BATTERY,
    }
    kinds = {k.label: k for k in [*HEAD_KINDS.values(), SMALL_ELECTRONICS]}
    for label, stream in must.items():
        kind = kinds[label]
        strong = [
            Alternative(label=other.label, stream=other.stream, confidence=0.3)
            for other in HEAD_KINDS.values()
            if other.stream not in (kind.stream, stream)
        ]
        question = clarification_for(_classification(label, kind.stream, 0.35, strong), Locale.KO)
        assert question is not None
        assert stream in [c.stream for c in question.choices], label
