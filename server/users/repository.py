"""Queries on users and on everything a user owns. Never commits: ``Database.session()`` does.

Every query that reads a user's data takes the user id and filters on it: this is where a
person is kept to their own scans, uploads and chats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.models import Identity, RefreshToken
from server.coach.models import ChatMessage
from server.scans.models import Scan
from server.uploads.models import Upload
from server.users.models import User


async def create_guest(session: AsyncSession) -> User:
    user = User(is_guest=True)
    session.add(user)
    await session.flush()
    return user


async def get(session: AsyncSession, user_id: str) -> User | None:
    return await session.get(User, user_id)


async def providers(session: AsyncSession, user_id: str) -> list[str]:
    rows = await session.scalars(
        select(Identity.provider).where(Identity.user_id == user_id).order_by(Identity.provider)
    )
    return list(rows)


async def scans_page(
    session: AsyncSession,
    user_id: str,
    *,
    limit: int,
    before: tuple[datetime, str] | None,
) -> Sequence[Scan]:
    """Newest first; ``before`` is the (created_at, id) of the last scan of the previous page."""
    query = select(Scan).where(Scan.user_id == user_id)
    if before is not None:
        created_at, scan_id = before
        query = query.where(
            or_(
                Scan.created_at < created_at,
                (Scan.created_at == created_at) & (Scan.id < scan_id),
            )
        )
    rows = await session.scalars(
        query.order_by(Scan.created_at.desc(), Scan.id.desc()).limit(limit)
    )
    return rows.all()


async def scan(session: AsyncSession, user_id: str, scan_id: str) -> Scan | None:
    return await session.scalar(select(Scan).where(Scan.id == scan_id, Scan.user_id == user_id))


async def chats_page(
    session: AsyncSession, user_id: str, *, limit: int, before: int | None
) -> Sequence[ChatMessage]:
    query = select(ChatMessage).where(ChatMessage.user_id == user_id)
    if before is not None:
        query = query.where(ChatMessage.id < before)
    rows = await session.scalars(query.order_by(ChatMessage.id.desc()).limit(limit))
    return rows.all()


@dataclass(frozen=True, slots=True)
class ScanCounts:
    total: int
    by_status: dict[str, int]
    by_stream: dict[str, int]
    first_at: datetime | None
    last_at: datetime | None
    questions: int


async def stats(session: AsyncSession, user_id: str) -> ScanCounts:
    status_rows = await session.execute(
        select(Scan.status, func.count()).where(Scan.user_id == user_id).group_by(Scan.status)
    )
    by_status = {str(status): int(count) for status, count in status_rows.all()}
    # The stream the vision stage assigned, read inside the JSON column on either database.
    stream = Scan.classification["stream"].as_string()
    stream_rows = await session.execute(
        select(stream, func.count())
        .where(Scan.user_id == user_id, Scan.status == "completed", stream.is_not(None))
        .group_by(stream)
    )
    by_stream = {str(name): int(count) for name, count in stream_rows.all()}
    span = (
        await session.execute(
            select(func.min(Scan.created_at), func.max(Scan.created_at)).where(
                Scan.user_id == user_id
            )
        )
    ).one()
    questions = await session.scalar(
        select(func.count())
        .select_from(ChatMessage)
        .where(ChatMessage.user_id == user_id, ChatMessage.role == "user")
    )
    return ScanCounts(
        total=sum(by_status.values()),
        by_status=by_status,
        by_stream=by_stream,
        first_at=span[0],
        last_at=span[1],
        questions=int(questions or 0),
    )


async def upload_keys(session: AsyncSession, user_id: str) -> list[str]:
    """Every object key the user's uploads may occupy: the clean copy and the staging key."""
    rows = await session.execute(
        select(Upload.key, Upload.staging_key).where(Upload.user_id == user_id)
    )
    return sorted({key for row in rows for key in row if key is not None})


async def erase(session: AsyncSession, user_id: str) -> list[str]:
    """Delete every row of the user; return the upload keys whose objects must go too.

    Each table is cleared explicitly rather than trusting ON DELETE CASCADE: chat messages have
    no foreign key, and SQLite enforces cascades only with a per-connection pragma.
    """
    keys = await upload_keys(session, user_id)
    await session.execute(delete(ChatMessage).where(ChatMessage.user_id == user_id))
    await session.execute(delete(Scan).where(Scan.user_id == user_id))
    await session.execute(delete(Upload).where(Upload.user_id == user_id))
    await session.execute(delete(RefreshToken).where(RefreshToken.user_id == user_id))
    await session.execute(delete(Identity).where(Identity.user_id == user_id))
    await session.execute(delete(User).where(User.id == user_id))
    return keys
