"""A person's own account: profile, history, stats, budget, and erasing all of it.

Every function takes the user id from the verified access token; nothing here accepts a user
id from the request body or path, so no call can reach another person's data.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from protocol.messages import ErrorCode
from server.coach.models import ChatMessage
from server.db import Database
from server.errors import InvalidInput, NotFound
from server.limits import LimitStatus, RateLimiter
from server.scans.models import Scan
from server.timestamps import as_utc
from server.uploads.storage import Storage
from server.users import repository
from server.users.models import User

log = logging.getLogger(__name__)

T = TypeVar("T")
# The protocol has no generic "not found" code yet; until it does, a missing account or scan
# reports FORBIDDEN (with HTTP 404), which is also what a client must do: not retry.
_NOT_FOUND = ErrorCode.NOT_FOUND


@dataclass(frozen=True, slots=True)
class Profile:
    user: User
    providers: list[str]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    #: Pass back as ``cursor`` for the next (older) page; None on the last page.
    next_cursor: str | None


async def profile(db: Database, user_id: str) -> Profile:
    async with db.session() as session:
        user = await repository.get(session, user_id)
        if user is None:
            raise NotFound("this account no longer exists", code=_NOT_FOUND)
        return Profile(user, await repository.providers(session, user_id))


#: Chat message ids are 32-bit integers on PostgreSQL: a larger cursor cannot be one of ours,
#: and the database would refuse it with an error rather than an empty page.
_MAX_CHAT_ID = 2**31 - 1


def _bad_cursor() -> InvalidInput:
    return InvalidInput("cursor is not one this server handed out")


def _encode(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    """The text inside a cursor: printable ASCII, as every cursor we hand out is.

    A cursor is client input: non-ASCII characters (base64 refuses them with a plain
    ``ValueError``), bytes that are not ASCII, and control characters (a NUL, which PostgreSQL
    refuses in text) are all a 422 here rather than a 500 further down.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise _bad_cursor() from exc
    if not raw.isprintable():
        raise _bad_cursor()
    return raw


def _scan_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    created_at, _, scan_id = _decode(cursor).partition("|")
    if not scan_id:
        raise _bad_cursor()
    try:
        when = datetime.fromisoformat(created_at)
        # Ours carry UTC (or, read back from SQLite, no offset, which is UTC). Compared in
        # UTC: SQLite stores the wall time without an offset, and PostgreSQL refuses a naive
        # value for a timestamptz. Converting can overflow (year 9999 with a negative offset).
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise _bad_cursor() from exc
    return when, scan_id


async def scan_history(
    db: Database, user_id: str, *, limit: int, cursor: str | None
) -> Page[Scan]:
    before = _scan_cursor(cursor)
    async with db.session() as session:
        # One extra row tells whether an older page exists without a count query.
        rows = list(await repository.scans_page(session, user_id, limit=limit + 1, before=before))
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = _encode(f"{as_utc(last.created_at).isoformat()}|{last.id}")
    return Page(items, next_cursor)


async def scan(db: Database, user_id: str, scan_id: str) -> Scan:
    async with db.session() as session:
        row = await repository.scan(session, user_id, scan_id)
    if row is None:
        # Someone else's scan reads as missing: its id says nothing about whether it exists.
        raise NotFound(f"scan {scan_id!r} not found", code=_NOT_FOUND)
    return row


async def chat_history(
    db: Database, user_id: str, *, limit: int, cursor: str | None
) -> Page[ChatMessage]:
    before: int | None = None
    if cursor is not None:
        raw = _decode(cursor)  # ASCII: isdigit() also takes digits like "²", int() does not
        if not raw.isdigit() or len(raw) > 10 or int(raw) > _MAX_CHAT_ID:
            raise _bad_cursor()
        before = int(raw)
    async with db.session() as session:
        rows = list(await repository.chats_page(session, user_id, limit=limit + 1, before=before))
    items = rows[:limit]
    return Page(items, _encode(str(items[-1].id)) if len(rows) > limit else None)


async def stats(db: Database, user_id: str) -> repository.ScanCounts:
    async with db.session() as session:
        return await repository.stats(session, user_id)


async def limits(limiter: RateLimiter, user_id: str) -> dict[str, LimitStatus]:
    return {
        "scan": await limiter.peek(user_id, "scan"),
        "chat": await limiter.peek(user_id, "chat"),
    }


async def delete_account(
    db: Database, storage: Storage, user_id: str, *, on_erased: Callable[[str], None]
) -> None:
    """Erase the user's rows and stored uploads.

    Objects go first: if storage fails, nothing is erased and the call can simply be repeated,
    whereas erasing rows first would leave objects no row points at any more. Uploads created
    while this runs are caught by deleting, after the rows, any key that was not known before.
    """
    async with db.session() as session:
        known = await repository.upload_keys(session, user_id)
    for key in known:
        await storage.delete(key)
    async with db.session() as session:
        erased = await repository.erase(session, user_id)
    # Its tokens stopped working with the row; its open connections here close now (those in
    # other processes at their next check, see server.auth.revocation).
    on_erased(user_id)
    for key in set(erased) - set(known):
        await storage.delete(key)
    log.info("account %s erased with %d uploads", user_id, len(set(erased) | set(known)))
