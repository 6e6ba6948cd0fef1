"""The answer invariant: no sentence names a bin the item's own rules contradict.

``enforce`` is tested on its own, then as a property of the composer: for every item of the
knowledge base and every question template, in both languages, the composed answer names only
bins the item's rules sanction, opens with a destination the item's rules give, and never says
yes to a bin they do not.
"""

from __future__ import annotations

import pytest

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach import grounding as g
from server.coach.bins import named_bins
from server.coach.chat import ChatService
from server.coach.grounding import Sentence
from server.coach.invariant import ContradictionError, contradicts, enforce
from server.coach.planner import Ask, allowed_for, paths, read
from server.knowledge.kb import KnowledgeBase
from server.search import ItemSearch


def test_a_later_contradicting_sentence_is_dropped() -> None:
    sentences = [
        Sentence("버리는 곳: 일반종량제봉투."),
        Sentence("종이류 분리수거함에 넣으세요."),
        Sentence("영수증은 감열지입니다."),
    ]
    kept = enforce(sentences, {Stream.GENERAL})
    assert [s.text for s in kept] == ["버리는 곳: 일반종량제봉투.", "영수증은 감열지입니다."]


def test_a_contradicting_direct_answer_is_refused() -> None:
    with pytest.raises(ContradictionError):
        enforce([Sentence("It goes in the paper recycling bin.")], {Stream.GENERAL})


def test_a_part_sentence_may_name_its_part_bin() -> None:
    part = Sentence("라벨은 비닐류로 버리세요.", scope=frozenset({Stream.VINYL}))
    assert enforce([Sentence("버리는 곳: 투명 페트병 전용 수거함."), part], {Stream.CLEAR_PET})


def test_negated_bins_are_not_contradictions() -> None:
    assert contradicts("아니요, 종이류 분리수거함에 넣으면 안 돼요.", {Stream.GENERAL}) == []
    assert contradicts("Put it in the paper bin.", {Stream.GENERAL}) == [Stream.PAPER]


# --------------------------------------------------------------------------- the property

#: Question templates, each with the condition it names (streams it may send the item to).
TEMPLATES: dict[Locale, list[str]] = {
    Locale.KO: [
        "{name} 어디에 버려요?",
        "{name} 종이류에 넣어도 돼요?",
        "{name} 음식물 쓰레기예요?",
        "{name} 플라스틱으로 버려도 되죠?",
        "{name} 유리병 수거함에 넣어도 돼요?",
        "{name} 재활용 돼요?",
        "{name} 깨졌어요",
        "{name} 기름 묻었으면요?",
        "{name} 씻어도 안 빠지는 얼룩이 있어요",
        "{name} 뚜껑은요?",
        "{name} 왜요?",
    ],
    Locale.EN: [
        "where does {name} go?",
        "can I put {name} in the paper recycling bin?",
        "is {name} food waste?",
        "can I recycle {name}?",
        "{name} broke, what now?",
        "what if {name} is greasy?",
        "what about the cap of {name}?",
    ],
}
#: Where a condition the question names may send an item, whatever its usual rule.
CONDITION_TARGETS = frozenset(
    {Stream.NON_COMBUSTIBLE, Stream.BULKY, Stream.PLASTIC, Stream.GENERAL, Stream.BATTERY}
)
#: Where a part ("the cap") may be sent.
PART_TARGETS = frozenset({Stream.PLASTIC, Stream.METAL, Stream.VINYL, Stream.GENERAL})


@pytest.fixture(scope="module")
def chat(kb: KnowledgeBase, item_search: ItemSearch) -> ChatService:
    return ChatService(kb, item_search)


@pytest.mark.parametrize("locale", [Locale.KO, Locale.EN])
def test_no_answer_about_any_item_names_a_contradicting_bin(
    chat: ChatService, kb: KnowledgeBase, locale: Locale
) -> None:
    problems: list[str] = []
    for item in kb.items.values():
        subject = g.ground(kb, item.stream, item)
        own = set(paths(item, item.stream)) | {r.stream for r in subject.rules}
        sanctioned = set(allowed_for(subject))
        name = g.item_name(item, locale)
        for template in TEMPLATES[locale]:
            question = template.format(name=name)
            reading = read(question)
            sentences, _, allowed = chat.compose(subject, reading, locale)
            text = " ".join(s.text for s in sentences)
            named = named_bins(text)
            extra = set(CONDITION_TARGETS if reading.conditions else ())
            if reading.parts:
                extra |= PART_TARGETS
            outside = [s for s in named if s not in sanctioned | extra]
            if outside:
                problems.append(f"{item.id} {question!r}: names {outside}: {text}")
            if not sentences:
                problems.append(f"{item.id} {question!r}: empty answer")
                continue
            if reading.ask is Ask.YES_NO and reading.proposed and not reading.conditions:
                says_yes = sentences[0].text.startswith(("네", "Yes"))
                if says_yes and not reading.proposed & own:
                    problems.append(f"{item.id} {question!r}: yes to {reading.proposed}: {text}")
            plain = reading.ask is Ask.WHERE and not reading.conditions and not reading.parts
            if plain and named and named[0] not in own | sanctioned:
                problems.append(f"{item.id} {question!r}: first bin {named[0]}: {text}")
            if contradicts(text, allowed):
                problems.append(f"{item.id} {question!r}: the plan's own check let through {text}")
    assert not problems, f"{len(problems)} answers break the invariant:\n" + "\n".join(
        problems[:20]
    )
