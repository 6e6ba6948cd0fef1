"""GET /api/v1/waste/items/search through real HTTP semantics (httpx + ASGI transport) on a
small app that mounts only this router, with the real search behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from server.knowledge.endpoints import item_search, router
from server.search.service import ItemSearch


@pytest.fixture
async def client(search: ItemSearch) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[item_search] = lambda: search
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_search_returns_items_with_their_official_category(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/waste/items/search", params={"q": "우유곽", "limit": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "우유곽"
    assert body["suggestions"] == []
    assert 1 <= len(body["items"]) <= 3
    top = body["items"][0]
    assert set(top) == {"id", "name", "name_en", "category", "stream", "score"}
    assert top["stream"] == "paper_pack"
    assert top["category"] == {"major": "재활용폐기물", "middle": "종이팩", "minor": "일반팩"}
    assert 0 < top["score"] <= 1


async def test_english_question(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/waste/items/search", params={"q": "how do I throw away chicken bones"}
    )
    assert response.status_code == 200
    top = response.json()["items"][0]
    assert (top["id"], top["name"], top["stream"]) == (736, "닭뼈", "general")
    assert top["category"] == {"major": "일반폐기물", "middle": "일반종량제폐기물", "minor": None}


async def test_nothing_known_answers_with_suggestions_only(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/waste/items/search", params={"q": "quantum physics homework"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["items"] == []
    assert isinstance(body["suggestions"], list)


@pytest.mark.parametrize(
    ("q", "reason"),
    [
        ("", "empty_query"),
        ("   ", "empty_query"),
        ("가" * 201, "query_too_long"),
        ("ゴミはどこに捨てますか", "unsupported_language"),
    ],
)
async def test_bad_questions_are_422_with_a_reason(
    client: httpx.AsyncClient, q: str, reason: str
) -> None:
    response = await client.get("/api/v1/waste/items/search", params={"q": q})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_message"
    assert error["reason"] == reason
    assert error["message"]


@pytest.mark.parametrize("params", [{}, {"q": "닭뼈", "limit": 0}, {"q": "닭뼈", "limit": 51}])
async def test_bad_parameters_are_422(
    client: httpx.AsyncClient, params: dict[str, str | int]
) -> None:
    response = await client.get("/api/v1/waste/items/search", params=params)
    assert response.status_code == 422


async def test_limit_is_respected(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/waste/items/search", params={"q": "캔", "limit": 50})
    assert response.status_code == 200
    assert 1 <= len(response.json()["items"]) <= 50
    response = await client.get("/api/v1/waste/items/search", params={"q": "캔", "limit": 1})
    assert len(response.json()["items"]) == 1
