"""Queries on scans.

A scan is written once, when it ends (completed, cancelled or failed), with everything it
produced. While it runs, the durable record of it is the job itself (a persistent RabbitMQ
message, acknowledged only after the outcome is written), so no row is needed up front and the
start of a scan costs no database round trip. The first outcome written wins: a cancel that
raced the worker, or a task redelivered after a crash, never overwrites it.

Outcomes go through the process's group-commit writer (:class:`server.db.GroupWriter`): a
finished scan waits for its own durable commit, and concurrent scans share commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import Base, Database
from server.scans.models import Scan
from server.users.models import utcnow

#: The scans table itself. ``Scan.__table__`` is declared as any ``FromClause`` (a class may be
#: mapped onto a join or a subquery, which no INSERT can target); the metadata holds the Table.
_TABLE: Table = Base.metadata.tables[Scan.__tablename__]


async def get(session: AsyncSession, scan_id: str) -> Scan | None:
    return await session.get(Scan, scan_id)


async def record_outcome(db: Database, **values: Any) -> None:
    """Insert the finished scan unless an outcome for it exists; returns once it is committed."""
    values.setdefault("finished_at", utcnow())
    values.setdefault("created_at", values["finished_at"])
    await db.writer(_TABLE).write(values)
