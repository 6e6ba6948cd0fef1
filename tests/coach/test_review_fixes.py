"""Wrong bins a second reader found in the everyday-names round (issue 15), each pinned.

A material said that an offered item is not made of ("종이 그릇" is no porcelain bowl) stops
the offer; a glass container may be heat-resistant glass (the non-combustible sack), so the
glass bottle bin is never its only answer; names that mean something else to most people
(a balcony safety net, leftover yogurt) are not aliases of an item of another bin.
"""

from __future__ import annotations

import pytest

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach.bins import named_bins
from server.coach.chat import ChatService
from server.knowledge.kb import KnowledgeBase
from server.search import ItemSearch

KO, EN = Locale.KO, Locale.EN


@pytest.fixture(scope="module")
def chat(kb: KnowledgeBase, item_search: ItemSearch) -> ChatService:
    return ChatService(kb, item_search)


def bins_of(chat: ChatService, question: str, locale: Locale = KO) -> list[Stream]:
    plan = chat.plan(question=question, locale=locale, scan_context=None, history=[])
    return named_bins(" ".join(s.text for s in plan.sentences))


@pytest.mark.parametrize("question", ["종이 그릇 어디 버려요", "나무 그릇 어디 버려요"])
def test_a_material_the_offered_items_are_not_made_of_stops_the_offer(
    chat: ChatService, question: str
) -> None:
    assert Stream.NON_COMBUSTIBLE not in bins_of(chat, question)


@pytest.mark.parametrize(
    ("question", "locale"),
    [("유리 통 버리는 법", KO), ("유리 용기 어디 버려요?", KO), ("glass container", EN)],
)
def test_a_glass_container_may_be_heat_resistant_glass(
    chat: ChatService, question: str, locale: Locale
) -> None:
    bins = bins_of(chat, question, locale)
    assert Stream.NON_COMBUSTIBLE in bins, bins


@pytest.mark.parametrize(
    ("question", "wrong"),
    [("베란다 안전망 버리는 법", Stream.METAL), ("남은 요거트 어디 버려요", Stream.PLASTIC)],
)
def test_a_name_most_people_mean_otherwise_is_no_alias(
    chat: ChatService, question: str, wrong: Stream
) -> None:
    assert wrong not in bins_of(chat, question)


@pytest.mark.parametrize("word", ["여름철", "지하철", "철거"])
def test_a_word_that_only_contains_철_says_no_metal(word: str) -> None:
    from server.coach.planner import MATERIALS

    assert not MATERIALS[Stream.METAL].search(word)
    assert MATERIALS[Stream.METAL].search("철로 된 " + word)
