"""The chat tells the truth about the bin: each failure of the new-user trial (issue 15), asked
through the chat as a person would, after a scan where they had one.

Each case names the bin the answer must send the item to first, the bins it must not send it
to, and, for a yes/no question, the right first word. Bins are read from the answer's text
(server.coach.bins), so a wrong bin said in any wording fails the test.
"""

from __future__ import annotations

import pytest

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach.bins import named_bins
from server.coach.chat import ChatResult, ChatService, Outcome
from server.coach.eval import scan_of
from server.knowledge.kb import KnowledgeBase
from server.search import ItemSearch
from tests.coach.helpers import classification, drain

KO, EN = Locale.KO, Locale.EN
G, P, PP, GL, NC, PL, PET, M, V, F, E, B = (
    Stream.GENERAL,
    Stream.PAPER,
    Stream.PAPER_PACK,
    Stream.GLASS,
    Stream.NON_COMBUSTIBLE,
    Stream.PLASTIC,
    Stream.CLEAR_PET,
    Stream.METAL,
    Stream.VINYL,
    Stream.FOOD,
    Stream.ELECTRONICS,
    Stream.BATTERY,
)


@pytest.fixture(scope="module")
def chat(kb: KnowledgeBase, item_search: ItemSearch) -> ChatService:
    return ChatService(kb, item_search)


async def ask(
    chat: ChatService, kb: KnowledgeBase, question: str, locale: Locale, context: str | None
) -> ChatResult:
    scan = scan_of(kb, context) if context else None
    deltas, result = await drain(
        chat.answer(question=question, locale=locale, scan_context=scan, history=[]), ChatResult
    )
    assert "".join(deltas) == result.text
    return result


CASES = [
    # question, locale, scan context, first bin, bins it must not name, yes/no
    ("영수증 종이니까 종이류에 넣으면 되죠?", KO, None, G, {P}, "no"),
    ("우유팩 그냥 종이랑 같이 버려도 돼요?", KO, None, PP, {P}, "no"),
    ("내열유리 반찬통 유리병 수거함에 넣어도됨?", KO, None, NC, {GL}, "no"),
    ("깨졌어요", KO, "glass_bottle", NC, {GL}, None),
    ("병이 깨졌는데 어떡해요", KO, "glass_bottle", NC, {GL, Stream.MEDICINE}, None),
    ("it broke, what do I do?", EN, "glass_bottle", NC, {GL}, None),
    ("소주병 깨졌는데 보증금 받을 수 있어요?", KO, None, NC, {GL}, "no"),
    ("초록색 사이다 페트병 투명페트병 수거함에 넣어요?", KO, None, PL, {PET}, "no"),
    ("green sprite bottle where?", EN, None, PL, {PET}, None),
    ("빨간물 안 빠지는 배달 용기 어떻게 버려요", KO, None, G, {PL}, None),
    ("국물 밴 컵라면 용기", KO, None, G, {P, Stream.STYROFOAM}, None),
    ("나무젓가락 재활용 돼요?", KO, None, G, {M}, "no"),
    ("wooden chopsticks recycle?", EN, None, G, {M}, "no"),
    ("뚜껑은요?", KO, "pet_bottle", PET, set(), None),
    ("드라이기 고장났는데 어디 버려요", KO, None, E, {Stream.BULKY}, None),
    ("떡볶이 용기 어떻게 버려", KO, None, PL, {P}, None),
    ("커피 찌꺼기 어디 버려요?", KO, None, G, {F}, None),
    ("커피찌꺼기 음쓰로 버려도 되나요", KO, None, G, {F}, "no"),
    ("where do coffee grounds go", EN, None, G, {F}, None),
    ("음식물 묻은 랩은 어떻게 해요", KO, None, G, {V}, None),
    ("dirty cling film", EN, None, G, {V}, None),
    ("Pringles can", EN, None, G, {M}, None),
    ("is a pringles can metal recycling?", EN, None, G, {M}, "no"),
    ("can I put this with the paper?", EN, "milk_carton", PP, {P, M}, "no"),
    ("라벨 무시하고 그냥 페트병 버려도 돼?", KO, None, PET, set(), "no"),
    ("my power bank is swollen", EN, None, B, {G}, None),
    # A material said besides the item's name overrides a name that states another material.
    ("컵라면 용기 스티로폼", KO, None, Stream.STYROFOAM, {P}, None),
    ("종이컵 플라스틱이에요?", KO, None, P, set(), None),
    ("clean plastic wrap", EN, None, V, {PL}, None),
    # Takeout containers are the plastic container, not an item that shares a word.
    ("떡볶이 포장 용기", KO, None, PL, {P}, None),
    ("takeaway container from the restaurant", EN, None, PL, {P}, None),
    # The clear PET bottle named as the item is not a proposal of its bin.
    ("clear pet bottle how to prepare", EN, None, PET, {G}, None),
    ("투명 페트병 어떻게 버려요", KO, None, PET, {G}, None),
    ("참기름병 투명 페트 수거함?", KO, None, GL, {PET}, "no"),
    # Garments by name are clothing, and torn ones are general waste.
    ("ripped jeans can go in clothing bin?", EN, None, G, set(), "no"),
    ("안 입는 청바지", KO, None, Stream.CLOTHING, set(), None),
    # Yes/no after a scan: may a part stay on, must the batteries come out, the same bin.
    ("테이프 안 떼고 버려도 돼요?", KO, "cardboard", P, set(), "no"),
    ("can I leave the tape on?", EN, "cardboard", P, set(), "no"),
    ("건전지 빼고 버려야 하나요?", KO, "small_electronics", E, set(), "yes"),
    ("do I have to take out the batteries?", EN, "small_electronics", E, set(), "yes"),
    ("기저귀도 여기 버려요?", KO, "tissue", G, set(), "yes"),
    ("우유팩도 여기 넣어요?", KO, "cardboard", PP, {P}, "no"),
    ("헹궈서 말려야 돼요?", KO, "milk_carton", PP, set(), "yes"),
    # Soft peels are food waste; papery skins, hard shells and big seeds are not.
    ("고구마 껍질", KO, None, F, {G}, None),
    ("kiwi peel", EN, None, F, {G}, None),
    ("마늘 껍질 음쓰?", KO, None, G, set(), "no"),
    ("garlic skin food waste?", EN, None, G, set(), "no"),
    ("홍합 껍데기", KO, None, G, set(), None),
    ("mango seed", EN, None, G, set(), None),
    # Deposit bottles against other glass bottles.
    ("사이다 유리병 보증금 받을 수 있어요?", KO, None, GL, set(), "yes"),
    ("양주병 보증금 돌려받나요?", KO, None, GL, set(), "no"),
    ("vodka bottle", EN, None, GL, set(), None),
    # Household items known by their everyday names.
    ("커피포트 고장났어요", KO, None, E, set(), None),
    ("옷장 버리려면", KO, None, Stream.BULKY, set(), None),
    ("old bike", EN, None, Stream.BULKY, set(), None),
    ("주방세제 통", KO, None, PL, set(), None),
    ("dish sponge", EN, None, G, set(), None),
    ("packing air pillows", EN, None, V, set(), None),
    ("꽃병", KO, None, NC, {GL}, None),
]


@pytest.mark.parametrize(
    ("question", "locale", "context", "first", "forbidden", "yes_no"),
    CASES,
    ids=[c[0] for c in CASES],
)
async def test_answers_with_the_right_bin(
    chat: ChatService,
    kb: KnowledgeBase,
    question: str,
    locale: Locale,
    context: str | None,
    first: Stream,
    forbidden: set[Stream],
    yes_no: str | None,
) -> None:
    result = await ask(chat, kb, question, locale, context)
    assert result.outcome is Outcome.ANSWERED, result.text
    named = named_bins(result.text)
    assert named and named[0] is first, result.text
    assert not forbidden & set(named), result.text
    if yes_no is not None:
        opening = ("아니요", "No") if yes_no == "no" else ("네", "Yes")
        assert result.text.startswith(opening), result.text


async def test_a_part_question_keeps_the_scanned_item(chat: ChatService, kb: KnowledgeBase) -> None:
    """After a PET-bottle scan "뚜껑은요?" is about the bottle's cap, not an eco bag."""
    result = await ask(chat, kb, "뚜껑은요?", KO, "pet_bottle")
    bottle = kb.item_for_label("pet_bottle")
    assert bottle is not None and result.item_ids == [bottle.id]
    assert "뚜껑" in result.text


async def test_a_strong_name_moves_the_subject(chat: ChatService, kb: KnowledgeBase) -> None:
    result = await ask(chat, kb, "그럼 우유팩은?", KO, "pet_bottle")
    assert result.item_ids == [16]
    assert named_bins(result.text)[0] is PP


async def test_items_with_two_paths_are_answered_with_both(
    chat: ChatService, kb: KnowledgeBase
) -> None:
    result = await ask(chat, kb, "젓가락 버리는 법", KO, None)
    assert {M, G} <= set(named_bins(result.text)), result.text


async def test_broken_glass_answer_says_how_to_wrap_it(
    chat: ChatService, kb: KnowledgeBase
) -> None:
    result = await ask(chat, kb, "병이 깨졌는데 어떡해요", KO, "glass_bottle")
    assert "신문지" in result.text


async def test_unclear_question_with_no_item_is_not_answered_with_a_guess(
    chat: ChatService, kb: KnowledgeBase
) -> None:
    result = await ask(chat, kb, "이거 어디에 버려요?", KO, None)
    assert result.outcome is Outcome.NOT_KNOWN


@pytest.mark.parametrize(
    ("question", "locale"),
    [("oven glass dish", EN), ("내열유리 그릇 어떻게 버려요", KO)],
)
async def test_a_part_step_only_for_some_items_is_left_out(
    chat: ChatService, kb: KnowledgeBase, question: str, locale: Locale
) -> None:
    """An oven dish has no lid: the heat-resistant-glass rule's lid-handle step is not its."""
    result = await ask(chat, kb, question, locale, None)
    assert named_bins(result.text) == [NC], result.text
    assert "손잡이" not in result.text and "handle" not in result.text


async def test_a_part_step_stays_for_the_items_that_have_the_part(
    chat: ChatService, kb: KnowledgeBase
) -> None:
    result = await ask(chat, kb, "유리 냄비뚜껑 어떻게 버려요", KO, None)
    assert named_bins(result.text)[0] is NC, result.text
    assert "손잡이" in result.text and M in named_bins(result.text)


def test_scan_context_builder_matches_the_vision_label(kb: KnowledgeBase) -> None:
    scan = scan_of(kb, "glass_bottle")
    assert scan.stream is GL and scan == classification(
        "glass_bottle", GL, name_ko=scan.name_ko, name_en=scan.name_en, confidence=0.92
    ).model_copy(update={"model": "eval"})
