"""Datetimes as the REST API sends them: always with an offset, in UTC (RFC 3339).

Every stored time is UTC, but SQLite keeps no offset and hands back naive datetimes, which
pydantic would send as ``2026-03-01T09:00:00`` (local time of nowhere, and not an RFC 3339
``date-time``). Response models declare their times as :data:`UtcDateTime` instead of
``datetime``; they go out as ``2026-03-01T09:00:00Z`` from either database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive value is taken as UTC already (what this service stores)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]
