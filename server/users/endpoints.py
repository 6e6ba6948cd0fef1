"""The signed-in person's own account: ``/api/v1/users/me`` and what hangs off it.

There is deliberately no route taking a user id: "me" is whoever the access token names.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from server.auth.deps import CurrentUser
from server.deps import ConnectionsDep, ContainerDep
from server.limits import RateLimiter, build_rate_limiter
from server.rest import error_responses
from server.timestamps import UtcDateTime
from server.users import service

router = APIRouter(
    prefix="/api/v1/users", tags=["users"], responses=error_responses(401, 404, 422, 429, 503)
)


def rate_limiter(request: Request) -> RateLimiter:
    """The process's limiter: the one the app set at start-up, else one made on first use."""
    state = request.app.state
    limiter: RateLimiter | None = getattr(state, "limiter", None)
    if limiter is None:
        limiter = build_rate_limiter(state.container.settings)
        state.limiter = limiter
    return limiter


class ProfileOut(BaseModel):
    id: str
    display_name: str | None
    is_guest: bool
    created_at: UtcDateTime
    providers: list[str] = Field(description="Linked sign-in providers.")


class ScanOut(BaseModel):
    id: str
    status: str
    created_at: UtcDateTime
    finished_at: UtcDateTime | None
    locale: str
    image_kind: str
    upload_key: str | None
    classification: dict[str, Any] | None
    coaching_text: str | None
    rule_ids: list[str] | None
    bins: dict[str, Any] | None
    error: dict[str, Any] | None


class ScanPage(BaseModel):
    items: list[ScanOut]
    next_cursor: str | None


class ChatOut(BaseModel):
    id: int
    session_id: str
    scan_id: str | None
    role: str
    content: str
    created_at: UtcDateTime


class ChatPage(BaseModel):
    items: list[ChatOut]
    next_cursor: str | None


class StatsOut(BaseModel):
    scans_total: int
    scans_by_status: dict[str, int]
    items_sorted: int = Field(description="Completed scans: items the person was coached on.")
    streams: dict[str, int] = Field(description="Completed scans per waste stream.")
    questions_asked: int
    first_scan_at: UtcDateTime | None
    last_scan_at: UtcDateTime | None


class BudgetOut(BaseModel):
    allowed: bool
    remaining_minute: int
    remaining_day: int
    reset_s: int
    limit_minute: int
    limit_day: int


Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]


def _scan_out(row: Any) -> ScanOut:
    return ScanOut.model_validate(row, from_attributes=True)


@router.get("/me", response_model=ProfileOut)
async def me(user: CurrentUser, container: ContainerDep) -> ProfileOut:
    found = await service.profile(container.db, user.user_id)
    return ProfileOut(
        id=found.user.id,
        display_name=found.user.display_name,
        is_guest=found.user.is_guest,
        created_at=found.user.created_at,
        providers=found.providers,
    )


@router.get("/me/scans", response_model=ScanPage)
async def my_scans(
    user: CurrentUser, container: ContainerDep, limit: Limit = 20, cursor: Cursor = None
) -> ScanPage:
    page = await service.scan_history(container.db, user.user_id, limit=limit, cursor=cursor)
    return ScanPage(items=[_scan_out(s) for s in page.items], next_cursor=page.next_cursor)


@router.get("/me/scans/{scan_id}", response_model=ScanOut)
async def my_scan(scan_id: str, user: CurrentUser, container: ContainerDep) -> ScanOut:
    return _scan_out(await service.scan(container.db, user.user_id, scan_id))


@router.get("/me/chats", response_model=ChatPage)
async def my_chats(
    user: CurrentUser, container: ContainerDep, limit: Limit = 50, cursor: Cursor = None
) -> ChatPage:
    page = await service.chat_history(container.db, user.user_id, limit=limit, cursor=cursor)
    return ChatPage(
        items=[ChatOut.model_validate(m, from_attributes=True) for m in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/me/stats", response_model=StatsOut)
async def my_stats(user: CurrentUser, container: ContainerDep) -> StatsOut:
    counts = await service.stats(container.db, user.user_id)
    return StatsOut(
        scans_total=counts.total,
        scans_by_status=counts.by_status,
        items_sorted=sum(counts.by_stream.values()),
        streams=counts.by_stream,
        questions_asked=counts.questions,
        first_scan_at=counts.first_at,
        last_scan_at=counts.last_at,
    )


@router.get("/me/limits", response_model=dict[str, BudgetOut])
async def my_limits(
    user: CurrentUser, limiter: Annotated[RateLimiter, Depends(rate_limiter)]
) -> dict[str, BudgetOut]:
    """What is left of today's and this minute's budget, before a scan or question hits it."""
    budgets = await service.limits(limiter, user.user_id)
    return {kind: BudgetOut.model_validate(b, from_attributes=True) for kind, b in budgets.items()}


@router.delete("/me", status_code=204)
async def delete_me(
    user: CurrentUser, container: ContainerDep, connections: ConnectionsDep
) -> Response:
    """Erase the account: scans, chats, uploads (rows and stored images), sign-in links."""
    await service.delete_account(
        container.db, container.storage, user.user_id, on_erased=connections.account_deleted
    )
    return Response(status_code=204)
