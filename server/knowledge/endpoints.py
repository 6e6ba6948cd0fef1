"""REST routes of the waste knowledge base: item search.

    GET /api/v1/waste/items/search?q=...&limit=10

Thin: validates the parameters, runs the search off the event loop, and turns the search
service's domain error into a 422 with a stable body. The search itself is
:mod:`server.search.service`.
"""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from protocol.messages import Locale, OfficialCategory
from protocol.streams import Stream
from server.rest import error_responses
from server.search.service import (
    ItemSearch,
    SearchHit,
    SearchQueryError,
    get_item_search,
)

router = APIRouter(
    prefix="/api/v1/waste", tags=["waste"], responses=error_responses(422, 503)
)


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ItemMatch(_Schema):
    id: int = Field(description="Item id in the official dictionary (분리배출.kr).")
    name: str = Field(description="Korean name.")
    name_en: str | None
    category: OfficialCategory = Field(
        description="The item's main official category path, spelled as in the dictionary."
    )
    stream: Stream
    score: float = Field(ge=0, le=1)

    @classmethod
    def from_hit(cls, hit: SearchHit) -> ItemMatch:
        item = hit.item
        return cls(
            id=item.id,
            name=item.name_ko,
            name_en=item.name_en,
            category=item.categories[0],
            stream=item.stream,
            score=min(1.0, max(0.0, hit.score)),
        )


class ItemSearchResponse(_Schema):
    query: str
    items: list[ItemMatch]
    suggestions: list[ItemMatch] = Field(
        default_factory=list,
        description=(
            "Filled only when ``items`` is empty: the closest items, for a 'did you mean' "
            "reply. Never an answer in disguise."
        ),
    )


class SearchErrorBody(_Schema):
    code: str
    reason: str | None = Field(
        default=None,
        description=(
            "Why the query cannot be searched: empty_query, query_too_long or "
            "unsupported_language. Absent when a parameter itself is refused (a missing q, a "
            "limit out of range, an unknown locale): that 422 is the app-wide one, "
            "{code, message}."
        ),
    )
    message: str


class SearchErrorResponse(_Schema):
    error: SearchErrorBody


def item_search(request: Request) -> ItemSearch:
    """Dependency: the process's search, built at start-up (overridden in tests)."""
    found: ItemSearch | None = getattr(request.app.state, "item_search", None)
    return found if found is not None else get_item_search()


@router.get(
    "/items/search",
    response_model=ItemSearchResponse,
    responses={422: {"model": SearchErrorResponse}},
    summary="Find items by free text (Korean or English)",
)
async def search_items(
    search: Annotated[ItemSearch, Depends(item_search)],
    q: Annotated[str, Query(description="What the person typed; 1 to 200 characters.")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    locale: Annotated[Locale | None, Query()] = None,
) -> ItemSearchResponse | JSONResponse:
    try:
        # A few milliseconds of NumPy and the embedding model: off the event loop.
        result = await to_thread.run_sync(search.lookup, q, limit, locale)
    except SearchQueryError as exc:
        body = SearchErrorResponse(
            error=SearchErrorBody(code=exc.code.value, reason=exc.reason.value, message=exc.message)
        )
        return JSONResponse(status_code=exc.status, content=body.model_dump())
    return ItemSearchResponse(
        query=result.query,
        items=[ItemMatch.from_hit(hit) for hit in result.hits],
        suggestions=[ItemMatch.from_hit(hit) for hit in result.suggestions],
    )
