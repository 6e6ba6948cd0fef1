"""Queries on scans.

A scan is written once, when it ends (completed, cancelled or failed), with everything it
produced. While it runs, the durable record of it is the job itself (a persistent RabbitMQ
message, acknowledged only after the outcome is written), so no row is needed up front and the
start of a scan costs no database round trip. The first outcome written wins: a cancel that
raced the worker, or a task redelivered after a crash, never overwrites it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from server.scans.models import Scan
from server.users.models import utcnow


async def get(session: AsyncSession, scan_id: str) -> Scan | None:
    return await session.get(Scan, scan_id)


async def record_outcome(session: AsyncSession, **values: Any) -> bool:
    """Insert the finished scan unless an outcome for it exists. Returns whether it was new."""
    values.setdefault("finished_at", utcnow())
    values.setdefault("created_at", values["finished_at"])
    dialect = session.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Scan).values(**values).on_conflict_do_nothing()
    result = await session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]
