"""The chat planner on its own: reading a question, resolving the condition, deciding yes/no.

The subject is grounded from the knowledge base directly, so these pin the planner's logic
without item search in the way; tests/coach/test_chat.py asks the same through the chat.
"""

from __future__ import annotations

import pytest

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach import grounding as g
from server.coach.planner import (
    Ask,
    Condition,
    decide,
    paths,
    read,
    resolve,
    without_proposals,
)
from server.knowledge.kb import KnowledgeBase


@pytest.mark.parametrize(
    ("question", "ask", "proposed"),
    [
        ("영수증 종이니까 종이류에 넣으면 되죠?", Ask.YES_NO, {Stream.PAPER}),
        ("우유팩 그냥 종이랑 같이 버려도 돼요?", Ask.YES_NO, {Stream.PAPER}),
        ("내열유리 반찬통 유리병 수거함에 넣어도됨?", Ask.YES_NO, {Stream.GLASS}),
        ("치킨뼈 음쓰 맞죠?", Ask.YES_NO, {Stream.FOOD}),
        ("can I throw AA batteries in the trash?", Ask.YES_NO, {Stream.GENERAL}),
        ("두유팩도 종이팩이에요?", Ask.YES_NO, {Stream.PAPER_PACK}),
        ("영수증 어디에 버려요", Ask.WHERE, set()),
        ("green sprite bottle where?", Ask.WHERE, set()),
        ("뚜껑은요?", Ask.PREPARE, set()),
    ],
)
def test_reads_the_kind_of_question_and_the_proposed_bin(
    question: str, ask: Ask, proposed: set[Stream]
) -> None:
    reading = read(question)
    assert reading.ask is ask
    assert reading.proposed == proposed


@pytest.mark.parametrize(
    ("question", "condition"),
    [
        ("병이 깨졌는데 어떡해요", Condition.BROKEN),
        ("it broke, what do I do?", Condition.BROKEN),
        ("초록색 사이다 페트병", Condition.COLOURED),
        ("빨간물 안 빠지는 배달 용기", Condition.STAINED),
        ("국물 밴 컵라면 용기", Condition.STAINED),
        ("나무젓가락", Condition.WOODEN),
        ("기름 묻은 피자 박스", Condition.GREASY),
        ("젖었으면 어떡해요", Condition.WET),
        ("my power bank is swollen", Condition.SWOLLEN),
        ("라벨 안 떼지면?", Condition.LABEL_STUCK),
    ],
)
def test_reads_conditions(question: str, condition: Condition) -> None:
    assert condition in read(question).conditions


def test_red_stain_is_not_a_colour() -> None:
    conditions = read("빨간물 안 빠지는 배달 용기").conditions
    assert Condition.COLOURED not in conditions


def test_the_proposal_is_not_searched_for() -> None:
    assert without_proposals("간장병 투명 페트병 수거함에 넣어도 돼요?").startswith("간장병")
    assert "종이" not in without_proposals("영수증 종이니까 종이류에 넣으면 되죠?")
    # Nothing but the proposal left: the question is searched as it is.
    assert without_proposals("종이류?") == "종이류?"


def _subject(kb: KnowledgeBase, item_id: int) -> g.Grounding:
    item = kb.item(item_id)
    return g.ground(kb, item.stream, item)


@pytest.mark.parametrize("locale", [Locale.KO, Locale.EN])
def test_broken_bottle_follows_the_broken_glass_rule(kb: KnowledgeBase, locale: Locale) -> None:
    bottle = kb.item_for_label("glass_bottle")
    assert bottle is not None
    resolution = resolve(kb, _subject(kb, bottle.id), read("깨졌어요"), locale)
    assert resolution.primary == {Stream.NON_COMBUSTIBLE}
    assert Stream.GLASS not in resolution.allowed
    assert resolution.grounding.main is not None
    assert resolution.grounding.main.id == "item.broken_glass"


def test_broken_deposit_bottle_gets_no_refund(kb: KnowledgeBase) -> None:
    soju = 130
    reading = read("소주병 깨졌는데 보증금 받을 수 있어요?")
    resolution = resolve(kb, _subject(kb, soju), reading, Locale.KO)
    assert decide(reading, resolution) is False
    assert resolution.lead is not None and "보증금" in resolution.lead.text


def test_coloured_pet_goes_to_plastic(kb: KnowledgeBase) -> None:
    reading = read("초록색 페트병 투명 페트병 수거함에 넣어요?")
    resolution = resolve(kb, _subject(kb, 123), reading, Locale.KO)
    assert resolution.primary == {Stream.PLASTIC}
    assert decide(reading, resolution) is False


def test_item_with_two_paths_is_answered_with_both(kb: KnowledgeBase) -> None:
    chopsticks = kb.item(600)
    assert set(paths(chopsticks, chopsticks.stream)) == {Stream.METAL, Stream.GENERAL}
    resolution = resolve(kb, _subject(kb, 600), read("젓가락 버리는 법"), Locale.KO)
    assert set(resolution.alternatives) == {Stream.METAL, Stream.GENERAL}
    metal = resolve(kb, _subject(kb, 600), read("스텐 젓가락"), Locale.KO)
    assert metal.primary == {Stream.METAL} and not metal.alternatives
    wooden = resolve(kb, _subject(kb, 600), read("나무젓가락"), Locale.KO)
    assert wooden.primary == {Stream.GENERAL}


@pytest.mark.parametrize(
    ("item_id", "question", "verdict"),
    [
        (730, "영수증 종이류에 넣으면 되죠?", False),
        (16, "우유팩 종이랑 같이 버려도 돼요?", False),
        (16, "두유팩도 종이팩이에요?", True),
        (122, "라벨 떼야 돼요?", True),
        (179, "아이스팩 하수구에 짜서 버려도 돼요?", False),
        (537, "건전지 일반쓰레기로 버려도 돼?", False),
        (639, "맥주병 편의점에 가져가면 돈 줘요?", True),
        (600, "젓가락 재활용 돼요?", None),  # two paths: said with both, not a bare yes or no
    ],
)
def test_decides_yes_or_no_from_the_rules(
    kb: KnowledgeBase, item_id: int, question: str, verdict: bool | None
) -> None:
    reading = read(question)
    assert decide(reading, resolve(kb, _subject(kb, item_id), reading, Locale.KO)) is verdict
