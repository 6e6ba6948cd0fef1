"""Item search: free text in Korean or English → ranked official items.

Two signals, fused:

* lexical: every item name (official Korean name, our English name, aliases, and the
  dictionary's related names at a low weight) is indexed as a space-free key and as Hangul-jamo
  character trigrams. A query scores against a name by exact match, by containment (the item
  named inside a question), and by trigram overlap of the whole query and of each of its words
  (typos, spacing). Question framing ("어디에 버려요", "how do I recycle") is trimmed first.
* semantic: cosine similarity of multilingual-e5-small embeddings, which carries English
  questions to Korean names and colloquial phrasings to the official ones.

A query that matches nothing well enough returns no hits and, separately, the closest items as
suggestions: the caller says "not known" instead of passing off a guess as an answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from protocol.messages import ErrorCode, Locale
from server.errors import WasteCoachError
from server.knowledge.kb import KnowledgeBase, get_knowledge_base
from server.knowledge.model import Item
from server.language import Script, detect_script
from server.search.embeddings import (
    Embedder,
    EmbeddingError,
    ItemVectors,
    load_vectors,
    passage_text,
)
from server.search.text import content_tokens, jamo, key, ngrams

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 200

# Weights of the kinds of names an item is known by.
_W_NAME = 1.0
_W_ALIAS = 0.95
_W_RELATED = 0.55
# Fusion: the lexical score leads; the embedding adds evidence and carries queries that share no
# words with any name. Cosines of e5 between unrelated short texts sit around 0.78-0.82, close
# matches at 0.86-0.92: mapped linearly from _COS_FLOOR (0) to _COS_CEIL (1).
_LEXICAL_WEIGHT = 0.7
_SEMANTIC_WEIGHT = 0.3
_COS_FLOOR = 0.80
_COS_CEIL = 0.90
#: A lexical match this good (the name itself, or nearly) needs no second opinion: the query
#: is not embedded, which saves the bulk of the latency for the most common questions.
_LEXICAL_CONFIDENT = 0.94
#: How much of the question is embedded: enough to name an item, short enough for the
#: embedding to stay within the latency budget.
_SEMANTIC_WORDS = 3
_SEMANTIC_CHARS = 24
#: Below this fused score an item is a suggestion at most, never an answer.
ANSWER_THRESHOLD = 0.42
SUGGESTIONS = 3
SUGGESTION_THRESHOLD = 0.15
_NO_NAMES = np.zeros(0, dtype=np.int32)


class SearchQueryProblem(StrEnum):
    EMPTY = "empty_query"
    TOO_LONG = "query_too_long"
    UNSUPPORTED_LANGUAGE = "unsupported_language"


class SearchQueryError(WasteCoachError):
    """The query cannot be searched; ``reason`` says why, ``message`` says it to a person."""

    code = ErrorCode.INVALID_MESSAGE
    status = 422

    def __init__(self, reason: SearchQueryProblem, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SearchHit:
    item: Item
    score: float
    #: The name (official, English, alias or related) that matched best, or ``"semantic"``.
    matched: str


@dataclass(frozen=True, slots=True)
class SearchResult:
    query: str
    language: Locale
    hits: list[SearchHit]
    #: Closest items when nothing matched well enough; empty when ``hits`` is not.
    suggestions: list[SearchHit] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Name:
    item_index: int
    text: str
    key: str
    weight: float
    english: bool


def _grams(text: str) -> set[str]:
    return ngrams(jamo(text))


class ItemSearch:
    """Hybrid lexical + embedding search over the knowledge base's items. Thread-safe."""

    def __init__(
        self,
        kb: KnowledgeBase,
        embedder: Embedder | None = None,
        vectors: ItemVectors | None = None,
    ) -> None:
        self._items: list[Item] = sorted(kb.items.values(), key=lambda i: i.id)
        self._names: list[_Name] = []
        for index, item in enumerate(self._items):
            self._add(index, item.name_ko, _W_NAME)
            if item.name_en:
                self._add(index, item.name_en, _W_NAME)
            for alias in item.aliases:
                self._add(index, alias, _W_ALIAS)
            for related in item.related:
                self._add(index, related, _W_RELATED)
        self._name_keys = [n.key for n in self._names]
        exact: dict[str, list[int]] = {}
        for name_index, name in enumerate(self._names):
            exact.setdefault(name.key, []).append(name_index)
        self._exact = {k: np.array(v, dtype=np.int32) for k, v in exact.items()}
        self._weights = np.array([n.weight for n in self._names], dtype=np.float32)
        self._name_item = np.array([n.item_index for n in self._names], dtype=np.int32)
        self._english = np.array([n.english for n in self._names], dtype=bool)
        postings: dict[str, list[int]] = {}
        sizes = np.zeros(len(self._names), dtype=np.float32)
        for name_index, name in enumerate(self._names):
            grams = _grams(name.key)
            sizes[name_index] = len(grams)
            for gram in grams:
                postings.setdefault(gram, []).append(name_index)
        self._postings = {g: np.array(ix, dtype=np.int32) for g, ix in postings.items()}
        self._gram_sizes = sizes
        self._embedder = embedder
        self._vectors: npt.NDArray[np.float32] | None = None
        if embedder is not None:
            self._vectors = self._item_matrix(embedder, vectors)

    def _add(self, index: int, text: str, weight: float) -> None:
        name_key = key(text)
        if not name_key:
            return
        self._names.append(
            _Name(index, text, name_key, weight, detect_script(text) is Script.LATIN)
        )

    def _item_matrix(
        self, embedder: Embedder, vectors: ItemVectors | None
    ) -> npt.NDArray[np.float32]:
        if vectors is None:
            try:
                vectors = load_vectors(self._items)
            except EmbeddingError as exc:
                # Still correct, only slower to start (seconds to minutes on a busy CPU): embed
                # the items now rather than serve without the semantic signal.
                log.warning("item vectors unusable (%s); embedding %d items", exc, len(self._items))
                matrix = embedder.passages([passage_text(i) for i in self._items])
                normalised: npt.NDArray[np.float32] = matrix / np.linalg.norm(
                    matrix, axis=1, keepdims=True
                )
                return normalised
        order = {item_id: row for row, item_id in enumerate(vectors.item_ids)}
        rows: npt.NDArray[np.float32] = vectors.matrix[[order[item.id] for item in self._items]]
        return rows

    # ------------------------------------------------------------------ public API

    def search(self, query: str, limit: int = 10, locale: Locale | None = None) -> list[SearchHit]:
        """Ranked items for ``query``; empty when nothing matches well enough."""
        return self.lookup(query, limit, locale).hits

    def lookup(self, query: str, limit: int = 10, locale: Locale | None = None) -> SearchResult:
        """Like :meth:`search`, with suggestions of the closest items when nothing matched."""
        text, language = self._validate(query)
        scores, matched = self._lexical(text, language if locale is None else locale)
        confident = float(scores.max(initial=0.0)) >= _LEXICAL_CONFIDENT
        if self._embedder is not None and self._vectors is not None and not confident:
            # Embed the words that name the item, not the question around them: fewer tokens
            # (the model's cost grows with them) and less framing to blur the meaning.
            cosines = self._vectors @ self._embedder.query(self._semantic_text(text))
            semantic = np.clip((cosines - _COS_FLOOR) / (_COS_CEIL - _COS_FLOOR), 0.0, 1.0)
            fused = _LEXICAL_WEIGHT * scores + _SEMANTIC_WEIGHT * semantic
            # A query no name matches can still be answered by meaning alone, but only when
            # the embedding is confident: weight it fully where the lexical side is silent.
            fused = np.where(scores < 0.2, np.maximum(fused, 0.75 * semantic), fused)
        else:
            fused = scores
        order = np.argsort(-fused, kind="stable")
        hits = [
            SearchHit(self._items[i], round(float(fused[i]), 4), matched.get(int(i), "semantic"))
            for i in order[: max(limit, SUGGESTIONS)]
        ]
        answers = [h for h in hits if h.score >= ANSWER_THRESHOLD][:limit]
        if answers:
            return SearchResult(text, language, answers)
        # A suggestion must share something with the question; noise is not a "did you mean".
        suggestions = [h for h in hits[:SUGGESTIONS] if h.score >= SUGGESTION_THRESHOLD]
        return SearchResult(text, language, [], suggestions)

    # ------------------------------------------------------------------ internals

    def _semantic_text(self, text: str) -> str:
        words = content_tokens(text, self._exact) or text.split()
        # The model's cost grows with every token (about 1.2 ms each on one core here); the
        # first few content words name the item, the rest describe its state.
        return " ".join(words[:_SEMANTIC_WORDS])[:_SEMANTIC_CHARS]

    @staticmethod
    def _validate(query: str) -> tuple[str, Locale]:
        text = " ".join(query.split())
        if not text:
            raise SearchQueryError(
                SearchQueryProblem.EMPTY, "The question is empty: name the item to look up."
            )
        if len(text) > MAX_QUERY_CHARS:
            raise SearchQueryError(
                SearchQueryProblem.TOO_LONG,
                f"The question is {len(text)} characters long; name the item in at most "
                f"{MAX_QUERY_CHARS}.",
            )
        script = detect_script(text)
        if script is Script.OTHER:
            raise SearchQueryError(
                SearchQueryProblem.UNSUPPORTED_LANGUAGE,
                "Only Korean and English are supported. 한국어나 영어로 물어봐 주세요.",
            )
        if script.locale is None:
            raise SearchQueryError(
                SearchQueryProblem.EMPTY, "The question has no words: name the item to look up."
            )
        return text, script.locale

    def _overlap(self, text_key: str) -> npt.NDArray[np.float32]:
        """Dice coefficient of jamo trigrams between ``text_key`` and every name."""
        grams = _grams(text_key)
        counts = np.zeros(len(self._names), dtype=np.float32)
        for gram in grams:
            posting = self._postings.get(gram)
            if posting is not None:
                counts[posting] += 1.0
        return 2.0 * counts / (len(grams) + self._gram_sizes)

    def _lexical(self, text: str, locale: Locale) -> tuple[npt.NDArray[np.float32], dict[int, str]]:
        full_key = key(text)
        words = content_tokens(text, self._exact)
        content_key = "".join(words) or full_key
        name_scores = self._overlap(content_key)
        for word in words:
            if len(word) >= 2 and word != content_key:
                # A misspelt word inside a longer question still finds its item, below a match
                # of the whole question and the more so the less of the question it is.
                share = 0.6 + 0.3 * len(word) / len(content_key)
                np.maximum(name_scores, share * self._overlap(word), out=name_scores)
        long_words = [w for w in words if len(w) >= 2]
        # Names sharing any trigram with the query are the only ones worth the string checks.
        for index in np.flatnonzero(name_scores > 0.05):
            name_key = self._name_keys[index]
            if name_key in (content_key, full_key):
                name_scores[index] = 1.0
                continue
            best = float(name_scores[index])
            if len(name_key) >= (3 if name_key.isascii() else 2) and name_key in content_key:
                # The item is named inside a longer question; longer names explain more of it.
                best = max(best, 0.55 + 0.45 * len(name_key) / len(content_key))
            elif len(content_key) >= 2 and content_key in name_key:
                best = max(best, 0.55 + 0.4 * len(content_key) / len(name_key))
            if len(long_words) > 1:
                # Several words of the question together spell the name ("과일 ... 그물망").
                inside = [w for w in long_words if w in name_key]
                if len(inside) > 1:
                    covered = sum(len(w) for w in inside)
                    best = max(
                        best,
                        min(1.0, covered / len(name_key))
                        * (0.6 + 0.3 * min(1.0, covered / len(content_key))),
                    )
            name_scores[index] = best
        for word in words:
            if len(word) == 1:
                # One syllable is a whole word in Korean (칼, 뼈, 캔): exact names only.
                name_scores[self._exact.get(word, _NO_NAMES)] = 1.0
        weighted = name_scores * self._weights
        # The language the person writes in decides ties between a Korean and an English name.
        weighted *= np.where(self._english == (locale is Locale.EN), 1.0, 0.98)
        item_scores = np.zeros(len(self._items), dtype=np.float32)
        np.maximum.at(item_scores, self._name_item, weighted)
        best_name: dict[int, str] = {}
        best_value: dict[int, float] = {}
        for name_index in np.flatnonzero(weighted > 0.3):
            item_index = int(self._name_item[name_index])
            value = float(weighted[name_index])
            if value > best_value.get(item_index, -1.0):
                best_value[item_index] = value
                best_name[item_index] = self._names[name_index].text
        return item_scores, best_name


def build_item_search(kb: KnowledgeBase, *, semantic: bool = True) -> ItemSearch:
    return ItemSearch(kb, Embedder() if semantic else None)


@lru_cache(maxsize=1)
def get_item_search() -> ItemSearch:
    """The process-wide search over the shipped knowledge base, built once."""
    return build_item_search(get_knowledge_base())
