"""Everyday phrasings of the breadth tuning set (issue 15) that the chat used to refuse or answer
about the wrong thing: a bin proposed after the item, a name glued to the question, a name
said again in brackets, pronouns and adverbs after the name, a crack said in two words."""

from __future__ import annotations

import pytest

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach import planner
from server.coach.bins import named_bins
from server.coach.chat import ChatService, Outcome
from server.coach.eval import scan_of
from server.knowledge.kb import KnowledgeBase
from server.search import ItemSearch

KO, EN = Locale.KO, Locale.EN


@pytest.fixture(scope="module")
def chat(kb: KnowledgeBase, item_search: ItemSearch) -> ChatService:
    return ChatService(kb, item_search)


@pytest.mark.parametrize(
    ("question", "gone", "kept"),
    [
        ("백열전구 형광등 수거함에 넣어요?", "형광등", "백열전구"),
        ("비타민 영양제도 폐의약품 수거함에 넣어요?", "폐의약품", "영양제도"),
        ("찢어진 옷도 의류수거함에 넣어요?", "의류수거함", "옷도"),
        ("아아 컵 투명페트병이랑 같이 버려도 돼?", "투명페트병", "아아 컵"),
        ("Is a mirror recyclable with glass bottles?", "bottles", "mirror"),
    ],
)
def test_a_proposed_bin_or_companion_is_not_the_item(question: str, gone: str, kept: str) -> None:
    asked = planner.without_proposals(question)
    assert gone not in asked
    assert kept in asked


@pytest.mark.parametrize(
    ("question", "locale", "first"),
    [
        ("형광등어디버려요", KO, Stream.LAMP),
        ("안 쓰는 가방 (에코백)", KO, Stream.CLOTHING),
        ("Coffee grounds, where do they go?", EN, Stream.GENERAL),
        ("뚝배기 금 간 거", KO, Stream.NON_COMBUSTIBLE),
        ("Kick scooter (non-electric)", EN, Stream.BULKY),
        # The label is what is asked about: its bin first, the bottle's after.
        ("삼다수 병 라벨 꼭 떼야 돼요?", KO, Stream.VINYL),
        ("how to recycle a pizza box?", EN, Stream.PAPER),
        # A clause after the name says what was in it or done to it.
        ("일회용 종이컵 커피 마신 거 어디 버려요?", KO, Stream.PAPER),
        ("욕조 교체", KO, Stream.BULKY),
        # Renovation waste is reported as such; the sack is for small amounts.
        ("셀프 인테리어 하고 나온 석고보드 시멘트", KO, Stream.CONSTRUCTION),
        # A material before a part is the part's; the can is still named.
        ("스팸 캔 플라스틱 뚜껑은 어디?", KO, Stream.PLASTIC),
        ("스프링 달린 탁상달력", KO, Stream.PAPER),
        ("A bag of leftover nails and screws", EN, Stream.METAL),
        ("Where do milk cartons go? My building only has a paper bin.", EN, Stream.PAPER_PACK),
        ("욕실 타일 몇 장", KO, Stream.NON_COMBUSTIBLE),
        ("동전 모양 수은전지 (CR2032)", KO, Stream.BATTERY),
        # "철로 된" says the lid's material: the lid is the subject.
        ("잼 병 뚜껑 철로 된 거", KO, Stream.METAL),
    ],
)
async def test_everyday_phrasings_are_answered(
    chat: ChatService, question: str, locale: Locale, first: Stream
) -> None:
    plan = chat.plan(question=question, locale=locale, scan_context=None, history=[])
    text = " ".join(s.text for s in plan.sentences)
    assert plan.outcome is Outcome.ANSWERED, text
    assert named_bins(text)[0] is first, text


async def test_a_qualifier_in_brackets_is_not_left_out(chat: ChatService) -> None:
    """ "(reusable)": without it the bottle would be a clear PET one; with it, no item is
    named, so the chat says so rather than guess."""
    plan = chat.plan(
        question="Nalgene style plastic water bottle (reusable)",
        locale=EN,
        scan_context=None,
        history=[],
    )
    text = " ".join(s.text for s in plan.sentences)
    assert Stream.CLEAR_PET not in named_bins(text), text


@pytest.mark.parametrize(
    ("question", "yes"),
    [
        ("LED 전구도 형광등 수거함?", True),
        ("검정 비닐봉지 분리수거 되나요", True),
        ("과자봉지 은색인데 비닐 맞아요?", True),
        ("택배 상자 테이프 붙은 채로 종이에 버려도 돼요?", False),
        ("와인잔 유리병에 같이?", False),
        ("두부 용기 물 버리고 플라스틱?", True),
        ("백열전구 형광등 수거함에 넣어요?", False),
        ("투명 페트 안 헹궈도 돼요?", False),
    ],
)
async def test_the_yes_or_no_of_everyday_proposals(
    chat: ChatService, question: str, yes: bool
) -> None:
    plan = chat.plan(question=question, locale=KO, scan_context=None, history=[])
    text = " ".join(s.text for s in plan.sentences)
    assert text.startswith("네" if yes else "아니요"), text


@pytest.mark.parametrize(
    ("question", "locale"),
    [("Is a laminated paper sheet recyclable?", EN), ("코팅된 종이 종이류로 버려도 돼요?", KO)],
)
async def test_coated_paper_is_not_paper(chat: ChatService, question: str, locale: Locale) -> None:
    plan = chat.plan(question=question, locale=locale, scan_context=None, history=[])
    text = " ".join(s.text for s in plan.sentences)
    assert text.startswith(("No", "아니요")), text
    assert named_bins(text)[0] is Stream.GENERAL, text
    assert Stream.PAPER not in named_bins(text), text


async def test_the_scans_bin_asked_in_a_condition_is_answered_no(
    chat: ChatService, kb: KnowledgeBase
) -> None:
    """After a PET-bottle scan, "brown, same bin?": the brown bottle is plain plastic."""
    plan = chat.plan(
        question="It's a brown beer PET bottle, same bin?",
        locale=EN,
        scan_context=scan_of(kb, "pet_bottle"),
        history=[],
    )
    text = " ".join(s.text for s in plan.sentences)
    assert text.startswith("No"), text
    assert named_bins(text)[0] is Stream.PLASTIC, text
