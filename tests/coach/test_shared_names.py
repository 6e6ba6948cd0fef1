"""Names shared by things of different bins (뚜껑, 컵, 통, "bottle"…): answered with the
condition for each kind, never with one bin picked by rank and never with "not known"; and the
invariant that holds each conditional sentence to the bins of its own condition's item."""

from __future__ import annotations

import pytest

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach import grounding as g
from server.coach.bins import named_bins
from server.coach.chat import ChatService, Outcome
from server.coach.eval import scan_of
from server.coach.grounding import Conditional, Sentence
from server.coach.invariant import ContradictionError, enforce
from server.coach.planner import allowed_for
from server.coach.shared_names import SHARED, conditional
from server.knowledge.kb import KnowledgeBase
from server.search import ItemSearch

KO, EN = Locale.KO, Locale.EN


@pytest.fixture(scope="module")
def chat(kb: KnowledgeBase, item_search: ItemSearch) -> ChatService:
    return ChatService(kb, item_search)


# --------------------------------------------------------------------------- the invariant


def _plastic_lid() -> Sentence:
    return Sentence(
        "플라스틱 뚜껑이면 버리는 곳: 플라스틱 분리수거함.",
        condition=Conditional("플라스틱 뚜껑", 531, frozenset({Stream.PLASTIC})),
    )


def test_a_bin_under_its_own_condition_is_accepted_though_the_answer_allows_none() -> None:
    metal = Sentence(
        "If it is a metal lid, it goes in the can and metal recycling bin.",
        condition=Conditional("a metal lid", 535, frozenset({Stream.METAL})),
    )
    kept = enforce([Sentence("재질에 따라 달라요."), _plastic_lid(), metal], frozenset())
    assert [named_bins(s.text) for s in kept] == [[], [Stream.PLASTIC], [Stream.METAL]]


def test_a_bin_its_condition_does_not_allow_is_refused() -> None:
    swapped = Sentence(
        "금속 뚜껑이면 버리는 곳: 플라스틱 분리수거함.",
        condition=Conditional("금속 뚜껑", 535, frozenset({Stream.METAL})),
    )
    with pytest.raises(ContradictionError):
        enforce([swapped], frozenset())
    # The answer's own bins do not widen a condition's: plastic is allowed for the answer, not
    # for a metal lid.
    with pytest.raises(ContradictionError):
        enforce([swapped], {Stream.PLASTIC})


def test_a_condition_not_said_before_the_bin_is_no_condition() -> None:
    unsaid = Sentence(
        "버리는 곳: 플라스틱 분리수거함.",
        condition=Conditional("플라스틱 뚜껑", 531, frozenset({Stream.PLASTIC})),
    )
    after = Sentence(
        "버리는 곳: 플라스틱 분리수거함 (플라스틱 뚜껑).",
        condition=Conditional("플라스틱 뚜껑", 531, frozenset({Stream.PLASTIC})),
    )
    for sentence in (unsaid, after):
        with pytest.raises(ContradictionError):
            enforce([sentence], frozenset())
    # A later one is dropped, like any contradicting sentence.
    assert enforce([_plastic_lid(), unsaid], frozenset()) == [_plastic_lid()]


def test_a_conditional_sentence_takes_its_bins_from_the_items_own_rules(
    kb: KnowledgeBase,
) -> None:
    for item_id, said in ((531, "플라스틱 뚜껑"), (535, "금속 뚜껑"), (757, "유리 냄비 뚜껑")):
        item = kb.items[item_id]
        sentence = conditional(kb, item, said, KO)
        assert sentence.condition is not None
        assert sentence.condition.allowed == allowed_for(g.ground(kb, item.stream, item))
        assert named_bins(sentence.text)[0] is item.stream
        assert enforce([sentence], frozenset()) == [sentence]


def test_every_kind_of_every_shared_name_is_an_item_with_its_own_bin(kb: KnowledgeBase) -> None:
    for name, kinds in SHARED.items():
        assert len(kinds) >= 2, name
        streams = set()
        for kind in kinds:
            item = kb.items[kind.item_id]
            streams.add(item.stream)
            for locale, said in ((KO, kind.ko), (EN, kind.en)):
                sentence = conditional(kb, item, said, locale)
                named = named_bins(sentence.text)
                assert named[0] is item.stream, (name, said)
                assert sentence.condition is not None
                assert set(named) <= sentence.condition.allowed, (name, said)
        assert len(streams) >= 2, f"{name}: its kinds share one bin, so it is no shared name"


# --------------------------------------------------------------------------- the chat


async def _answer(chat: ChatService, question: str, locale: Locale, context: str | None = None):
    scan = scan_of(chat.kb, context) if context else None
    return chat.plan(question=question, locale=locale, scan_context=scan, history=[])


@pytest.mark.parametrize(
    ("question", "locale", "first", "also"),
    [
        ("뚜껑 어디 버려요?", KO, Stream.PLASTIC, {Stream.METAL}),
        ("컵은 어디에 버려?", KO, Stream.PLASTIC, {Stream.PAPER, Stream.NON_COMBUSTIBLE}),
        ("where do I throw away a lid", EN, Stream.PLASTIC, {Stream.METAL}),
        ("how do I recycle bottles", EN, Stream.CLEAR_PET, {Stream.GLASS, Stream.PLASTIC}),
        ("고양이 모래 버리는 법", KO, Stream.GENERAL, {Stream.NON_COMBUSTIBLE}),
        ("아이스박스 버려도 돼요?", KO, Stream.STYROFOAM, {Stream.GENERAL}),
        ("도마 어떻게 버려요", KO, Stream.PLASTIC, {Stream.GENERAL}),
        ("Light bulbs - where?", EN, Stream.LAMP, {Stream.GENERAL}),
    ],
)
async def test_a_shared_name_gets_each_kind_with_its_condition(
    chat: ChatService, question: str, locale: Locale, first: Stream, also: set[Stream]
) -> None:
    plan = await _answer(chat, question, locale)
    text = " ".join(s.text for s in plan.sentences)
    assert plan.outcome is Outcome.ANSWERED, text
    named = named_bins(text)
    assert named[0] is first, text
    assert also <= set(named), text
    for sentence in plan.sentences:
        if named_bins(sentence.text):
            assert sentence.condition is not None, sentence.text
            assert sentence.condition.said in sentence.text


async def test_a_material_said_with_the_name_keeps_its_own_kind(chat: ChatService) -> None:
    plan = await _answer(chat, "금속 뚜껑 어디 버려요?", KO)
    text = " ".join(s.text for s in plan.sentences)
    assert named_bins(text) == [Stream.METAL], text


async def test_a_name_with_its_item_said_is_that_item(chat: ChatService) -> None:
    # 컵라면 뚜껑, 우유팩: the item is named; no conditional list of lids or packs.
    plan = await _answer(chat, "종이컵 어디 버려요?", KO)
    text = " ".join(s.text for s in plan.sentences)
    assert named_bins(text)[0] is Stream.PAPER
    assert Stream.NON_COMBUSTIBLE not in named_bins(text)


async def test_the_scan_in_context_stays_the_subject(chat: ChatService) -> None:
    plan = await _answer(chat, "뚜껑은요?", KO, "pet_bottle")
    assert plan.subject is not None and plan.subject.stream is Stream.CLEAR_PET
