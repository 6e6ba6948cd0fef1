"""The shipped knowledge base: completeness against the official dictionary, tricky items,
rule selection and vision labels."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pytest

from protocol.streams import OFFICIAL_PATH, Stream
from server.knowledge.kb import LABEL_ITEMS, KnowledgeBase, KnowledgeBaseError


def test_every_official_item_is_present_with_its_exact_category_path(
    kb: KnowledgeBase, official: dict[str, Any]
) -> None:
    assert len(official["items"]) == 730
    assert {raw["id"] for raw in official["items"]} == set(kb.items)
    for raw in official["items"]:
        item = kb.item(raw["id"])
        tokens = [unicodedata.normalize("NFKC", t) for t in raw["classification"]]
        decoded = [
            part
            for category in item.categories
            for part in (category.major, category.middle, category.minor)
            if part is not None
        ]
        # Decoding may repeat a major the source left implicit, never drop or invent a name.
        assert set(tokens) == set(decoded), (raw["id"], tokens, decoded)
        main = item.categories[0]
        main_parts = [p for p in (main.major, main.middle, main.minor) if p is not None]
        assert tokens[: len(main_parts)] == main_parts, (raw["id"], tokens)


def test_item_streams_agree_with_their_main_official_path(kb: KnowledgeBase) -> None:
    for item in kb.items.values():
        category = item.categories[0]
        major, middle = OFFICIAL_PATH[item.stream]
        assert category.major == major or item.stream in {Stream.MEDICINE, Stream.HAZARDOUS}
        if middle is not None and item.stream is not Stream.HAZARDOUS:
            assert category.middle == middle, item


def test_every_item_has_an_english_name(kb: KnowledgeBase) -> None:
    assert all(item.name_en for item in kb.items.values())


@pytest.mark.parametrize(
    ("item_id", "stream", "rule_id"),
    [
        (736, Stream.GENERAL, "item.bones"),  # 닭뼈: not food waste
        (385, Stream.GENERAL, "item.bones"),  # 돼지뼈
        (425, Stream.GENERAL, "item.shells"),  # 조개 껍데기
        (455, Stream.GENERAL, "item.pits_husks"),  # 복숭아 씨
        (419, Stream.GENERAL, "item.tea_dregs"),  # 티백
        (730, Stream.GENERAL, "item.receipt"),  # 영수증: not paper
        (16, Stream.PAPER_PACK, "item.paper_carton"),  # 우유팩: not paper
        (123, Stream.CLEAR_PET, "item.clear_pet"),
        (37, Stream.PAPER, "item.greasy_box"),  # 피자박스
        (498, Stream.NON_COMBUSTIBLE, "item.broken_glass"),
        (499, Stream.NON_COMBUSTIBLE, "item.heat_resistant_glass"),
        (593, Stream.PLASTIC, "item.toothpaste_tube"),
        (605, Stream.METAL, "item.aerosol"),
        (78, Stream.METAL, "item.butane"),
        (125, Stream.BATTERY, "item.lithium_battery"),
        (636, Stream.STYROFOAM, "item.styrofoam_clean"),
    ],
)
def test_tricky_items_have_their_own_rule_first(
    kb: KnowledgeBase, item_id: int, stream: Stream, rule_id: str
) -> None:
    item = kb.item(item_id)
    assert item.stream is stream
    rules = kb.rules_for(item.stream, item.id)
    assert rules[0].id == rule_id
    assert rules[-1].id == f"stream.{stream.value}"


def test_chicken_bone_guidance_says_general_waste_in_both_languages(kb: KnowledgeBase) -> None:
    rule = kb.rule("item.bones")
    assert "일반종량제봉투" in rule.bin.ko
    assert "general-waste" in rule.bin.en.lower()
    assert rule.why is not None and "음식물이 아닙니다" in rule.why.ko


def test_every_stream_has_a_category_rule_with_steps(kb: KnowledgeBase) -> None:
    for stream in Stream:
        rule = kb.category_rule(stream)
        assert rule.id == f"stream.{stream.value}"
        assert rule.steps
        assert rule.bin.ko and rule.bin.en


def test_rules_for_an_unknown_or_absent_item_is_the_category_rule(kb: KnowledgeBase) -> None:
    assert [r.id for r in kb.rules_for(Stream.GLASS)] == ["stream.glass"]
    assert [r.id for r in kb.rules_for(Stream.GLASS, 999_999)] == ["stream.glass"]


def test_items_for_stream(kb: KnowledgeBase) -> None:
    cartons = kb.items_for_stream(Stream.PAPER_PACK)
    assert {i.id for i in cartons} >= {16, 18, 519, 520}
    assert all(i.stream is Stream.PAPER_PACK for i in cartons)


def test_vision_labels_map_to_items_of_the_right_stream(kb: KnowledgeBase) -> None:
    expected = {
        "cardboard": Stream.PAPER,
        "paper": Stream.PAPER,
        "glass": Stream.GLASS,
        "metal": Stream.METAL,
        "plastic": Stream.PLASTIC,
        "pet_bottle": Stream.CLEAR_PET,
        "can": Stream.METAL,
        "battery": Stream.BATTERY,
        "food": Stream.FOOD,
        "clothing": Stream.CLOTHING,
        "plastic_bag": Stream.VINYL,
        "paper_cup": Stream.PAPER,
        "carton": Stream.PAPER_PACK,
        "electronics": Stream.ELECTRONICS,
        "trash": Stream.GENERAL,
        "drinking_glass": Stream.NON_COMBUSTIBLE,
        "food_waste": Stream.FOOD,
        "general_waste": Stream.GENERAL,
        "metal_can": Stream.METAL,
        "plastic_container": Stream.PLASTIC,
        "plastic_cup": Stream.PLASTIC,
        "plastic_packaging": Stream.PLASTIC,
        "small_electronics": Stream.ELECTRONICS,
        "tissue": Stream.GENERAL,
        "wood": Stream.GENERAL,
        "shoes": Stream.CLOTHING,
    }
    for label, stream in expected.items():
        item = kb.item_for_label(label)
        assert item is not None, label
        assert item.stream is stream, label
    assert set(expected) <= set(LABEL_ITEMS)
    assert kb.item_for_label(" Battery ") == kb.item_for_label("battery")
    assert kb.item_for_label("spaceship") is None


def test_unknown_ids_raise(kb: KnowledgeBase) -> None:
    with pytest.raises(KnowledgeBaseError, match=re.escape("unknown rule 'item.nope'")):
        kb.rule("item.nope")
    with pytest.raises(KnowledgeBaseError, match="unknown item 1234567"):
        kb.item(1234567)


def test_local_rules_apply_only_in_their_districts(kb: KnowledgeBase) -> None:
    jeju_city, seogwipo, gangnam = "50110", "50130", "11680"
    plastic = kb.local_rule(jeju_city, Stream.PLASTIC)
    assert plastic is not None and plastic.id == "local.jeju.plastic"
    assert kb.local_rule(seogwipo, Stream.PLASTIC) is plastic
    clear_pet = kb.local_rule(seogwipo, Stream.CLEAR_PET)
    assert clear_pet is not None and clear_pet.id == "local.jeju.clear_pet"
    assert kb.local_rule(gangnam, Stream.PLASTIC) is None
    assert kb.local_rule(None, Stream.PLASTIC) is None
    # Food waste is handled differently in Jeju's 동 and 읍·면 areas: no district-wide rule.
    assert kb.local_rule(jeju_city, Stream.FOOD) is None


def test_every_local_rule_is_sourced_named_and_dated(kb: KnowledgeBase) -> None:
    assert kb.local_rules
    for rule in kb.local_rules:
        assert rule.sources, rule.id
        assert all(code in kb.district_names for code in rule.districts), rule.id
        assert rule.checked >= "2026-01-01", rule.id


def test_a_local_rule_names_no_other_stream_s_bin(kb: KnowledgeBase) -> None:
    """A district's sentence follows the national guidance for one stream: it must not name
    the bin of another stream, or a glass-bottle answer would end naming the general bag."""
    for rule in kb.local_rules:
        own = set(rule.streams)
        for stream in Stream:
            if stream in own:
                continue
            other = kb.category_rule(stream).bin
            for locale_text, bin_text in ((rule.note.ko, other.ko), (rule.note.en, other.en)):
                assert bin_text.lower() not in locale_text.lower(), (rule.id, stream)


def test_every_kind_the_vision_head_names_has_an_item_in_the_same_stream(
    kb: KnowledgeBase,
) -> None:
    """The coaching follows the classifier's kind: a battery is coached as a battery, in the
    battery stream, never as the general bag. Clear glass is asked about, so it has no item."""
    from server.vision.taxonomy import HEAD_KINDS

    for kind in HEAD_KINDS.values():
        item = kb.item_for_label(kind.label)
        if kind.label == "clear_glass":
            assert item is None
            continue
        assert item is not None, kind.label
        assert item.stream is kind.stream, kind.label
