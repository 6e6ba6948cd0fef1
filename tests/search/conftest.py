"""Fixtures for the search tests: the real hybrid search over the shipped knowledge base."""

from __future__ import annotations

import pytest

from server.knowledge.kb import KnowledgeBase
from server.search.embeddings import Embedder
from server.search.service import ItemSearch


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture(scope="session")
def search(kb: KnowledgeBase, embedder: Embedder) -> ItemSearch:
    """Lexical and embeddings, with the committed item vectors, exactly as the server runs."""
    return ItemSearch(kb, embedder)


@pytest.fixture(scope="session")
def lexical(kb: KnowledgeBase) -> ItemSearch:
    return ItemSearch(kb)
