"""Item search over the shipped knowledge base: Korean, English, typos, spacing, colloquial
names, bad input and questions about nothing the knowledge base knows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protocol.messages import Locale
from protocol.streams import Stream
from server.knowledge.kb import KnowledgeBase
from server.search.embeddings import Embedder, EmbeddingError, load_vectors, save_vectors
from server.search.service import ItemSearch, SearchQueryError, SearchQueryProblem


def _top(search: ItemSearch, query: str) -> tuple[int, Stream]:
    hits = search.search(query, limit=5)
    assert hits, f"no hit for {query!r}"
    return hits[0].item.id, hits[0].item.stream


@pytest.mark.parametrize(
    ("query", "item_id"),
    [
        ("닭뼈", 736),
        ("영수증", 730),
        ("우유팩", 16),
        ("깨진유리", 498),
        ("부탄가스", 78),
        ("chicken bones", 736),
        ("receipt", 730),
        ("toothpaste tube", 593),
        ("Bubble Wrap", 106),
    ],
)
def test_names_in_korean_and_english(search: ItemSearch, query: str, item_id: int) -> None:
    assert _top(search, query)[0] == item_id


@pytest.mark.parametrize(
    ("query", "stream"),
    [
        ("택 배 상 자", Stream.PAPER),  # spacing
        ("택배박스", Stream.PAPER),
        ("우유 팩", Stream.PAPER_PACK),
        ("패트병", Stream.CLEAR_PET),  # ㅐ/ㅔ typo
        ("스티로퐁 상자", Stream.STYROFOAM),  # final consonant typo
        ("영수중", Stream.GENERAL),
        ("recipt", Stream.GENERAL),
        ("chiken bones", Stream.GENERAL),
        ("styrofom", Stream.STYROFOAM),
    ],
)
def test_typos_and_spacing(search: ItemSearch, query: str, stream: Stream) -> None:
    assert _top(search, query)[1] is stream


@pytest.mark.parametrize(
    ("query", "stream"),
    [
        ("치킨 먹고 남은 뼈 음식물 쓰레기야?", Stream.GENERAL),
        ("카드 영수증 종이로 버려도 돼요?", Stream.GENERAL),
        ("우유곽", Stream.PAPER_PACK),
        ("뽁뽁이", Stream.VINYL),
        ("how do I throw away a greasy pizza box", Stream.PAPER),
        ("where does a milk carton go", Stream.PAPER_PACK),
        ("is a broken wine glass recyclable", Stream.NON_COMBUSTIBLE),
    ],
)
def test_natural_questions(search: ItemSearch, query: str, stream: Stream) -> None:
    assert _top(search, query)[1] is stream


def test_hits_carry_the_official_category_and_what_matched(
    search: ItemSearch, kb: KnowledgeBase
) -> None:
    hit = search.search("우유팩", limit=3)[0]
    assert hit.item == kb.item(16)
    assert hit.item.categories[0].major == "재활용폐기물"
    assert hit.item.categories[0].middle == "종이팩"
    assert hit.matched == "우유팩"
    assert 0.9 <= hit.score <= 1.0


def test_results_are_ranked_and_limited(search: ItemSearch) -> None:
    hits = search.search("스티로폼", limit=4)
    assert 1 <= len(hits) <= 4
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(h.item.stream is Stream.STYROFOAM for h in hits[:3])


def test_embeddings_carry_what_no_name_spells(search: ItemSearch, lexical: ItemSearch) -> None:
    # "The machine that runs the laundry" shares almost no letters with any item name (the
    # Konglish 밧데리 did, until it became an alias of the batteries; 빨래기계 did, once
    # 빨래 건조대 became a name of the drying rack).
    assert lexical.search("빨래 돌리는 기계") == []
    assert _top(search, "빨래 돌리는 기계")[1] is Stream.ELECTRONICS


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", SearchQueryProblem.EMPTY),
        ("   \n\t ", SearchQueryProblem.EMPTY),
        ("?!? 123", SearchQueryProblem.EMPTY),
        ("가" * 201, SearchQueryProblem.TOO_LONG),
        ("ゴミはどこに捨てますか", SearchQueryProblem.UNSUPPORTED_LANGUAGE),
        ("куда выбросить батарейки", SearchQueryProblem.UNSUPPORTED_LANGUAGE),
    ],
)
def test_bad_queries_are_refused_with_a_reason(
    search: ItemSearch, query: str, reason: SearchQueryProblem
) -> None:
    with pytest.raises(SearchQueryError) as caught:
        search.search(query)
    assert caught.value.reason is reason
    assert caught.value.status == 422
    assert caught.value.message


def test_a_question_of_exactly_the_limit_is_searched(search: ItemSearch) -> None:
    question = ("닭뼈 " * 67)[:200]
    assert len(question) == 200
    assert search.search(question)


def test_nothing_known_gives_no_answer_but_close_suggestions(search: ItemSearch) -> None:
    result = search.lookup("quantum physics homework")
    assert result.hits == []
    assert result.language is Locale.EN
    assert all(s.score < 0.42 for s in result.suggestions)


def test_suggestions_are_offered_for_a_near_miss(lexical: ItemSearch) -> None:
    result = lexical.lookup("helmet case for a bike")
    # Either an answer or a suggestion names the helmet; never silence for a near miss.
    names = {h.item.id for h in [*result.hits, *result.suggestions]}
    assert 486 in names


def test_locale_breaks_ties_between_languages(lexical: ItemSearch) -> None:
    hits_en = lexical.search("CD", locale=Locale.EN)
    assert hits_en[0].item.id == 336


def test_query_embeddings_are_cached(embedder: Embedder) -> None:
    first = embedder.query("플라스틱 컵 캐시 테스트")
    assert embedder.query("플라스틱 컵 캐시 테스트") is first
    assert first.shape == (384,)
    assert abs(float(np.linalg.norm(first)) - 1.0) < 1e-3


def test_committed_item_vectors_are_fresh_and_checked(kb: KnowledgeBase, tmp_path: Path) -> None:
    items = sorted(kb.items.values(), key=lambda i: i.id)
    vectors = load_vectors(items)  # raises when stale or tampered
    assert vectors.matrix.shape == (730, 384)
    save_vectors(items, vectors.matrix, tmp_path)
    assert load_vectors(items, tmp_path).item_ids == vectors.item_ids
    with pytest.raises(EmbeddingError, match="stale"):
        load_vectors(items[:-1], tmp_path)
    raw = (tmp_path / "item_vectors.npy").read_bytes()
    (tmp_path / "item_vectors.npy").write_bytes(raw[:-2] + b"\x00\x01")
    with pytest.raises(EmbeddingError, match="checksum"):
        load_vectors(items, tmp_path)


class _CountingEmbedder:
    """Wraps the real embedder to count the queries it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.texts: list[str] = []

    def query(self, text: str) -> np.ndarray:  # type: ignore[type-arg]
        self.texts.append(text)
        return self.inner.query(text)


def test_confident_name_matches_skip_the_embedding(kb: KnowledgeBase, embedder: Embedder) -> None:
    counting = _CountingEmbedder(embedder)
    search = ItemSearch(kb, counting)  # type: ignore[arg-type]
    assert search.search("닭뼈")[0].item.id == 736
    assert counting.texts == []
    # A question is embedded by its content words, without the framing around them.
    search.search("빨래기계 어디에 버려요?")
    assert counting.texts == ["빨래기계"]


def test_item_names_are_not_cut_by_particle_stripping(search: ItemSearch) -> None:
    # "아보카도" ends in a syllable that is also a particle (도); it is a name, kept whole.
    assert _top(search, "아보카도 씨앗 버리기") == (753, Stream.GENERAL)
