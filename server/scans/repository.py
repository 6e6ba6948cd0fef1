"""Queries on scans."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.scans.models import Scan
from server.users.models import utcnow


async def insert(session: AsyncSession, scan: Scan) -> None:
    session.add(scan)
    await session.flush()


async def get(session: AsyncSession, scan_id: str) -> Scan | None:
    return await session.get(Scan, scan_id)


async def find(session: AsyncSession, session_id: str, request_id: str) -> Scan | None:
    result = await session.execute(
        select(Scan).where(Scan.session_id == session_id, Scan.request_id == request_id)
    )
    return result.scalar_one_or_none()


async def finish(session: AsyncSession, scan_id: str, *, status: str, **fields: Any) -> bool:
    """Record the outcome of a scan still running; a scan that already ended keeps its
    outcome (a cancel that raced the worker's finish, or a redelivered task)."""
    result = await session.execute(
        update(Scan)
        .where(Scan.id == scan_id, Scan.status == "running")
        .values(status=status, finished_at=utcnow(), **fields)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
