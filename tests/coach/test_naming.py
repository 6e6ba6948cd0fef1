"""A search hit is the subject only when its names explain the question (server.coach.naming).

Each case is a kind of weak match seen in the evaluation sets, written with items other than the
ones seen where the kind allows: a modifier shared with another item, a generic name inside a
compound, a one-jamo slip that makes another word, the thing's container.
"""

from __future__ import annotations

import pytest

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach import naming
from server.coach.bins import named_bins
from server.coach.chat import ChatService, Outcome
from server.coach.eval import scan_of
from server.knowledge.kb import KnowledgeBase
from server.search import ItemSearch

KO, EN = Locale.KO, Locale.EN


@pytest.fixture(scope="module")
def vocabulary(kb: KnowledgeBase) -> naming.Vocabulary:
    return naming.Vocabulary(kb.items.values())


@pytest.fixture(scope="module")
def chat(kb: KnowledgeBase, item_search: ItemSearch) -> ChatService:
    return ChatService(kb, item_search)


def names(vocabulary: naming.Vocabulary, kb: KnowledgeBase, item_id: int, question: str) -> bool:
    words = naming.question_words(vocabulary, question)
    return naming.names_the_item(vocabulary, kb.item(item_id), words)


@pytest.mark.parametrize(
    ("question", "item_id", "expected"),
    [
        # The head is the thing: 노트 is not a 노트북, a tub of 고추장 is not 고추장.
        ("스프링 노트", 549, True),
        ("스프링 노트", 605, False),  # 스프레(이): one syllable changed in a short word
        ("고추장 통", 170, False),
        ("휴지심", 492, False),  # 휴지 is the modifier of 휴지심
        ("가루약", 147, True),  # ends in 약, a name of the pills
        ("닭뼈 어디 버려요", 736, True),
        # State words never carry a match on their own.
        ("유통기한 지난 연고", 647, False),
        ("유통기한 지난 연고", 146, True),
        ("old ipad tablet", 147, False),
        ("expired pills", 147, True),
        # A modifier that names another item makes a generic name the wrong thing.
        ("bread bag", 150, False),
        ("dog poop bag", 150, False),
        ("leather bag", 150, True),  # "leather" names no item: a bag it is
        # Typos of one jamo in a long enough word still name it.
        ("영수즁", 730, True),
        ("스치로폼 박스", 636, True),
        # Conditions, materials and parts do not change what the thing is.
        ("깨진 머그컵", 502, True),
        ("초록색 사이다 페트병", 123, True),
        ("기름 묻은 피자 박스", 37, True),
        # What follows "from" says where it came from.
        ("ice pack from coupang", 179, True),
        # A predicate at the end is not the head.
        ("가루약 남았어요", 147, True),
        ("감자 껍질 깎은거", 541, True),
    ],
)
def test_names_the_item(
    vocabulary: naming.Vocabulary, kb: KnowledgeBase, question: str, item_id: int, expected: bool
) -> None:
    assert names(vocabulary, kb, item_id, question) is expected


def test_an_unknown_head_names_nothing(vocabulary: naming.Vocabulary, kb: KnowledgeBase) -> None:
    """ "전기 뭐시기": 전기 is shared by every electric item, the head by none of them."""
    words = naming.question_words(vocabulary, "전기 뭐시기")
    assert not any(naming.names_the_item(vocabulary, item, words) for item in kb.items.values())


@pytest.mark.parametrize(
    ("question", "locale"),
    [
        ("전기 뭐시기 고장났어요", KO),
        ("cat toy bag", EN),
        ("스프링 뭐시기", KO),
        ("유통기한 지난 뭐시기", KO),
        ("old tablet gizmo", EN),
    ],
)
async def test_a_weak_match_is_not_answered(
    chat: ChatService, question: str, locale: Locale
) -> None:
    """No item explains the question: the answer says so and names no bin."""
    plan = chat.plan(question=question, locale=locale, scan_context=None, history=[])
    text = " ".join(s.text for s in plan.sentences)
    assert plan.outcome is Outcome.NOT_KNOWN, text
    assert named_bins(text) == [], text


async def test_a_partial_match_is_offered_only_under_its_condition(chat: ChatService) -> None:
    """ "리치 껍질": 껍질 ends names of food peels and of hard shells, and 리치 names nothing
    known. The answer asks which it is, each item with its own bin under its own name, and no
    bin unconditionally ("cat toy bag" is not offered bags: "cat" names other things)."""
    plan = chat.plan(question="리치 껍질", locale=KO, scan_context=None, history=[])
    text = " ".join(s.text for s in plan.sentences)
    assert plan.outcome is Outcome.ANSWERED, text
    assert len(plan.item_ids) >= 2, text
    assert "어느 것인가요?" in text, text
    for sentence in plan.sentences:
        if named_bins(sentence.text):
            assert sentence.condition is not None, sentence.text
            assert sentence.condition.item_id in plan.item_ids
            named = named_bins(sentence.text)
            assert named[0] is chat.kb.items[sentence.condition.item_id].stream
            assert set(named) <= sentence.condition.allowed


async def test_a_container_keeps_the_scanned_item(chat: ChatService, kb: KnowledgeBase) -> None:
    """After a plastic-container scan, "된장 통" is that container, never food waste."""
    plan = chat.plan(
        question="된장 통인데 씻어야 돼요?",
        locale=KO,
        scan_context=scan_of(kb, "plastic_container"),
        history=[],
    )
    text = " ".join(s.text for s in plan.sentences)
    assert named_bins(text)[0] is Stream.PLASTIC, text
    assert Stream.FOOD not in named_bins(text), text
    assert text.startswith("네"), text
