"""Which word of a question is the thing (issue 15, the causes of holdout4's wrong answers).

A food or brand word before a container word is what the container held, not the thing; a
part of a branded container is the part; an item's whole name in the question is that item
even when a verb or a typo follows it.
"""

from __future__ import annotations

import pytest

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach.bins import named_bins
from server.coach.chat import ChatService, Outcome
from server.coach.eval import scan_of
from server.knowledge.kb import KnowledgeBase
from server.search import ItemSearch

KO, EN = Locale.KO, Locale.EN


@pytest.fixture(scope="module")
def chat(kb: KnowledgeBase, item_search: ItemSearch) -> ChatService:
    return ChatService(kb, item_search)


def answer(chat: ChatService, question: str, locale: Locale = KO, context: str | None = None):
    scan = scan_of(chat.kb, context) if context else None
    plan = chat.plan(question=question, locale=locale, scan_context=scan, history=[])
    return plan, " ".join(s.text for s in plan.sentences)


@pytest.mark.parametrize(
    "question",
    ["신라면 박스 종이로 내놓으면 돼?", "신라면 박스", "짜파게티 박스 어디 버려요"],
)
def test_food_before_a_box_is_what_it_held(chat: ChatService, question: str) -> None:
    _plan, text = answer(chat, question)
    bins = named_bins(text)
    assert bins and bins[0] is Stream.PAPER, text
    assert Stream.FOOD not in bins, text


@pytest.mark.parametrize(
    ("question", "locale"),
    [
        ("리튬 배터리인데 단자에 테이프 붙여야 돼요?", KO),
        ("건전지 테이프 붙여서 버려야 돼요?", KO),
        ("do i need to tape the terminals?", EN),
    ],
)
def test_tape_put_on_a_battery_is_an_instruction(
    chat: ChatService, question: str, locale: Locale
) -> None:
    """Tape on a battery's terminals is what to do, not a part to take off and bin."""
    _plan, text = answer(chat, question, locale, context="battery")
    assert text.startswith("네" if locale is KO else "Yes"), text
    assert named_bins(text) == [Stream.BATTERY], text


@pytest.mark.parametrize(
    "question", ["and the foam blocks that were inside?", "the foam inside, where?"]
)
def test_the_foam_asked_after_a_box_is_answered_first(chat: ChatService, question: str) -> None:
    """After a cardboard scan, "the foam…" asks about the foam: its bin comes first."""
    _plan, text = answer(chat, question, EN, context="cardboard")
    assert named_bins(text)[0] is Stream.STYROFOAM, text


def test_a_glass_containers_lid_gets_the_lids_rule(chat: ChatService) -> None:
    """A Glasslock lid is plastic: a bin proposed for the lid is judged for the lid, and the
    pot lid's metal-rim step (for glass pot lids) is not said of it."""
    _plan, text = answer(chat, "글라스락 뚜껑은 플라스틱으로 버리면 돼?")
    assert text.startswith("네"), text
    assert named_bins(text)[0] is Stream.PLASTIC, text
    assert Stream.METAL not in named_bins(text), text
    _plan, text = answer(chat, "글라스락 뚜껑은 캔으로 버려요?")
    assert text.startswith("아니요"), text


def test_the_lid_step_is_said_only_when_the_lid_is_asked(chat: ChatService) -> None:
    """An oven dish has no lid: its answer names no plastic bin."""
    for question, locale in (("파이렉스 깨졌어요", KO), ("Pyrex glass dish", EN)):
        _plan, text = answer(chat, question, locale)
        assert named_bins(text) == [Stream.NON_COMBUSTIBLE], text


@pytest.mark.parametrize(
    ("question", "locale", "no"),
    [
        ("멜라민 그릇 금갔는데 불연성 마대에 넣어요?", KO, "아니요"),
        ("melamine kids plate, is that ceramic waste?", EN, "No"),
    ],
)
def test_the_non_combustible_sack_is_a_proposed_bin(
    chat: ChatService, question: str, locale: Locale, no: str
) -> None:
    """'불연성 마대에' proposes a bin: it is not the thing, and the answer judges it."""
    _plan, text = answer(chat, question, locale)
    assert text.startswith(no), text
    assert named_bins(text)[0] is Stream.GENERAL, text


@pytest.mark.parametrize(
    ("question", "stream"),
    [
        ("에어프라이어 버리는법 알려주세여", Stream.ELECTRONICS),  # a typo of 알려주세요
        ("고기 굽던 석쇠 녹슬었어요", Stream.METAL),  # 고기 is what the verb 굽던 did
        ("믹서기 칼날 달린채로 버려도 되나", Stream.ELECTRONICS),  # 칼날 달린채: a clause
    ],
)
def test_an_items_name_with_verbs_around_it_is_that_item(
    chat: ChatService, question: str, stream: Stream
) -> None:
    plan, text = answer(chat, question)
    assert plan.outcome is Outcome.ANSWERED, text
    assert named_bins(text)[0] is stream, text


def test_a_thing_that_was_in_something_is_not_that_something(chat: ChatService) -> None:
    """'TV 포장에 들어있던 거예요' after a styrofoam scan: 거 is the foam, not the TV."""
    _plan, text = answer(chat, "TV 포장에 들어있던 거예요", context="styrofoam")
    assert Stream.ELECTRONICS not in named_bins(text), text
