"""The embedded composer against the real knowledge base, in Korean and English.

Expected wording is read from the knowledge base, not copied into the tests, so the tests
check that the composer picks the right rules and signals rather than pinning prose.
"""

from __future__ import annotations

import logging

import pytest

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach.composer import EmbeddedCoach
from server.coach.grounding import bin_phrase, ground_classification
from server.coach.prompts import text
from server.contracts import CoachingResult
from server.knowledge.kb import KnowledgeBase
from tests.coach.helpers import classification, drain, scan

LOCALES = [Locale.KO, Locale.EN]


@pytest.fixture(scope="module")
def coach(kb: KnowledgeBase) -> EmbeddedCoach:
    return EmbeddedCoach(kb)


@pytest.mark.parametrize("locale", LOCALES)
async def test_streams_sentences_then_one_result(coach: EmbeddedCoach, locale: Locale) -> None:
    item = classification(
        "pet_bottle", Stream.CLEAR_PET, name_ko="투명 페트병", name_en="clear PET bottle"
    )
    deltas, result = await drain(coach.coach(scan(locale), item), CoachingResult)
    sentences = [s.text.strip() for s in coach.compose(item, locale)]
    assert len(sentences) > 2
    assert [d.strip() for d in deltas] == sentences, "a delta per sentence, not one block"
    assert "".join(deltas) == result.text
    assert result.backend == "embedded"
    assert result.fallback_reason is None
    applicable = [rule.id for rule in ground_classification(coach.kb, item).rules]
    assert result.rule_ids, "the coaching cites the rules it used"
    assert set(result.rule_ids) <= set(applicable)


@pytest.mark.parametrize("locale", LOCALES)
async def test_clear_pet_tells_label_and_bin(
    coach: EmbeddedCoach, kb: KnowledgeBase, locale: Locale
) -> None:
    item = classification(
        "pet_bottle", Stream.CLEAR_PET, name_ko="투명 페트병", name_en="clear PET bottle"
    )
    rule = ground_classification(kb, item).rules[0]  # the most specific rule leads
    _, result = await drain(coach.coach(scan(locale), item), CoachingResult)
    assert result.rule_ids[0] == rule.id
    peel = next(step for step in rule.steps if step.action == "peel")
    assert text(peel.text, locale) in result.text
    assert bin_phrase(rule, locale) in result.text
    assert text(rule.why, locale) in result.text  # type: ignore[arg-type]
    assert ("페트병으로 보여요" if locale is Locale.KO else "clear PET bottle") in result.text


@pytest.mark.parametrize("locale", LOCALES)
async def test_heavy_grease_names_the_exception(
    coach: EmbeddedCoach, kb: KnowledgeBase, locale: Locale
) -> None:
    rule = kb.rule("stream.plastic")
    greasy = classification("plastic", Stream.PLASTIC, contamination="heavy")
    clean = classification("plastic", Stream.PLASTIC, contamination="clean")
    _, dirty_result = await drain(coach.coach(scan(locale), greasy), CoachingResult)
    _, clean_result = await drain(coach.coach(scan(locale), clean), CoachingResult)
    grease_exception = text(rule.exceptions[0], locale)
    assert grease_exception in dirty_result.text
    assert grease_exception not in clean_result.text
    # The rinse (how: lukewarm water, no scrubbing) comes before the exception.
    rinse = next(step for step in rule.steps if step.action == "rinse")
    assert dirty_result.text.index(text(rinse.text, locale)) < dirty_result.text.index(
        grease_exception
    )


async def test_heavy_soil_without_own_exception_cites_general_waste(
    coach: EmbeddedCoach, kb: KnowledgeBase
) -> None:
    # Glass has exceptions, but none about dirt: the general-waste rule is what applies.
    dirty = classification("glass", Stream.GLASS, contamination="heavy")
    _, result = await drain(coach.coach(scan(Locale.EN), dirty), CoachingResult)
    assert "stream.general" in result.rule_ids
    assert bin_phrase(kb.category_rule(Stream.GENERAL), Locale.EN) in result.text


@pytest.mark.parametrize("locale", LOCALES)
async def test_low_confidence_hedges_and_names_alternative(
    coach: EmbeddedCoach, kb: KnowledgeBase, locale: Locale
) -> None:
    unsure = classification(
        "glass", Stream.GLASS, confidence=0.41, alternatives=(("plastic", Stream.PLASTIC, 0.35),)
    )
    _, result = await drain(coach.coach(scan(locale), unsure), CoachingResult)
    assert ("확실하지 않아요" if locale is Locale.KO else "not sure") in result.text
    assert bin_phrase(kb.category_rule(Stream.PLASTIC), locale) in result.text
    assert result.rule_ids[0] == "stream.plastic"
    assert "stream.glass" in result.rule_ids


async def test_confident_result_does_not_hedge(coach: EmbeddedCoach) -> None:
    sure = classification(
        "glass", Stream.GLASS, confidence=0.95, alternatives=(("plastic", Stream.PLASTIC, 0.03),)
    )
    _, result = await drain(coach.coach(scan(Locale.EN), sure), CoachingResult)
    assert "not sure" not in result.text
    assert "stream.plastic" not in result.rule_ids


@pytest.mark.parametrize("locale", LOCALES)
async def test_attached_parts_are_separated(coach: EmbeddedCoach, locale: Locale) -> None:
    # Styrofoam's rule has no separating step of its own, so the parts the photo shows are
    # named explicitly.
    boxed = classification("styrofoam", Stream.STYROFOAM, parts=("tape", "label"), mixed="yes")
    _, result = await drain(coach.coach(scan(locale), boxed), CoachingResult)
    for part in ("테이프", "라벨") if locale is Locale.KO else ("tape", "label"):
        assert part in result.text


async def test_drop_off_items_are_not_told_a_bin_twice(
    coach: EmbeddedCoach, kb: KnowledgeBase
) -> None:
    battery = classification("battery", Stream.BATTERY)
    _, result = await drain(coach.coach(scan(Locale.EN), battery), CoachingResult)
    assert result.text.count(bin_phrase(kb.category_rule(Stream.BATTERY), Locale.EN)) <= 1
    assert result.rule_ids == ["stream.battery"]


@pytest.mark.parametrize("locale", LOCALES)
async def test_a_lamp_picked_in_the_clarify_question_is_coached_to_the_lamp_bin(
    coach: EmbeddedCoach, locale: Locale
) -> None:
    """The classifier's lamp answer (``server.vision.taxonomy.LAMP``, offered when ImageNet
    sees a lamp) reaches the lamp rule: the lamp bin, never the general-waste bag."""
    lamp = classification(
        "lamp",
        Stream.LAMP,
        name_ko="형광등·LED 전구",
        name_en="fluorescent tube or LED bulb",
    ).model_copy(update={"confirmed": True})
    _, result = await drain(coach.coach(scan(locale), lamp), CoachingResult)
    assert "stream.lamp" in result.rule_ids
    assert "stream.general" not in result.rule_ids
    assert ("형광등 수거함" if locale is Locale.KO else "lamp collection bin") in result.text
    assert "종량제" not in result.text and "general-waste" not in result.text


async def test_every_stream_composes_in_both_languages(coach: EmbeddedCoach) -> None:
    for stream in Stream:
        for locale in LOCALES:
            item = classification(f"unknown_{stream.value}", stream)
            _, result = await drain(coach.coach(scan(locale), item), CoachingResult)
            assert result.rule_ids == [f"stream.{stream.value}"]
            assert len(result.text) > 20


@pytest.mark.parametrize("locale", LOCALES)
async def test_confirmed_clarify_answer_is_coached_without_hedging(
    coach: EmbeddedCoach, locale: Locale
) -> None:
    """The person picked the item in answer to scan.clarify: no "not sure", no runner-up."""
    unsure = classification(
        "cardboard",
        Stream.PAPER,
        name_ko="골판지 상자",
        name_en="corrugated cardboard box",
        confidence=0.41,
        alternatives=(("plastic", Stream.PLASTIC, 0.35),),
    )
    confirmed = unsure.model_copy(update={"confirmed": True})
    _, result = await drain(coach.coach(scan(locale), confirmed), CoachingResult)
    for hedge in ("확실하지 않아요", "not sure", "actually", "라면 버리는 곳이 달라요"):
        assert hedge not in result.text
    assert "stream.plastic" not in result.rule_ids
    assert "stream.paper" in result.rule_ids


@pytest.mark.parametrize(
    ("label", "name_en", "expected"),
    [
        ("paper", "paper", "This looks like paper."),
        ("glass", "Glass", "This looks like glass."),
        ("can", "drink can", "This looks like a drink can."),
        ("electronics", "electric fan", "This looks like an electric fan."),
        ("medicine", "Pills (tablets)", "This looks like pills (tablets)."),
    ],
)
async def test_english_names_take_the_right_article(
    coach: EmbeddedCoach, label: str, name_en: str, expected: str
) -> None:
    item = classification(label, Stream.PAPER, name_en=name_en)
    _, result = await drain(coach.coach(scan(Locale.EN), item), CoachingResult)
    assert result.text.startswith(expected)


async def test_scan_coaching_names_no_contradicting_bin(
    coach: EmbeddedCoach, kb: KnowledgeBase
) -> None:
    """The scan composer passes the invariant too: every label, both languages."""
    from server.coach.bins import named_bins
    from server.coach.composer import scan_allowed
    from server.knowledge.kb import LABEL_ITEMS

    for label in LABEL_ITEMS:
        item = kb.item_for_label(label)
        assert item is not None
        scanned = classification(label, item.stream)
        allowed = scan_allowed(ground_classification(kb, scanned), scanned)
        for locale in LOCALES:
            sentences = coach.compose(scanned, locale)
            named = {s for sentence in sentences for s in named_bins(sentence.text)}
            assert named <= allowed, (label, locale, [s.text for s in sentences])


async def test_scan_coaching_keeps_every_sentence_of_the_rules(
    coach: EmbeddedCoach, kb: KnowledgeBase, caplog: pytest.LogCaptureFixture
) -> None:
    """The rules' own sentences pass the invariant: none is dropped as naming a wrong bin.

    A "why" that names the general bag as the place of a harm ("in a rubbish bag batteries start
    fires") explains why not; reading it as a direction dropped it, and the battery lost its why.
    """
    from server.knowledge.kb import LABEL_ITEMS

    caplog.set_level(logging.WARNING, logger="server.coach.invariant")
    for label in LABEL_ITEMS:
        item = kb.item_for_label(label)
        assert item is not None
        for locale in LOCALES:
            coach.compose(classification(label, item.stream), locale)
    assert not [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    battery = coach.compose(classification("battery", Stream.BATTERY), Locale.KO)
    assert any("화재" in s.text for s in battery)
