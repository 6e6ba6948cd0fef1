"""Rate limits and daily quotas: the shared interface and the window arithmetic.

Each kind of costly request (a scan, a chat question, a new guest account) has two budgets: a
per-minute rate, counted in fixed one-minute windows, and a daily quota that resets at midnight
in Korea (KST, UTC+9), which is when people expect "today" to start. A hit that would exceed
either budget is refused and not counted, so hammering a closed limit does not push its reset
further away.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal, Protocol

#: ``scan`` and ``chat`` are counted per user id; ``guest`` per client address.
Kind = Literal["scan", "chat", "guest"]
KST = timezone(timedelta(hours=9), "KST")


@dataclass(frozen=True, slots=True)
class Quota:
    per_minute: int
    per_day: int


@dataclass(frozen=True, slots=True)
class LimitStatus:
    """The budget after a hit (or, for ``peek``, as it stands); sent to clients as is."""

    #: ``hit``: whether this request may go ahead. ``peek``: whether the next one would.
    allowed: bool
    remaining_minute: int
    remaining_day: int
    #: Seconds until the budget that is binding refills: the day's if the quota is spent,
    #: otherwise the minute's.
    reset_s: int
    limit_minute: int
    limit_day: int


class RateLimiter(Protocol):
    async def hit(self, user_id: str, kind: Kind) -> LimitStatus:
        """Count one request if both budgets allow it."""
        ...

    async def peek(self, user_id: str, kind: Kind) -> LimitStatus:
        """The budget without counting anything."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Windows:
    minute: int
    minute_reset_s: int
    day: str
    day_reset_s: int


def windows(now: float | None = None) -> Windows:
    now = time.time() if now is None else now
    minute = int(now // 60)
    local = datetime.fromtimestamp(now, UTC).astimezone(KST)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return Windows(
        minute=minute,
        minute_reset_s=max(1, (minute + 1) * 60 - int(now)),
        day=local.strftime("%Y%m%d"),
        day_reset_s=max(1, int((midnight - local).total_seconds())),
    )


def status(
    quota: Quota, window: Windows, *, allowed: bool, used_minute: int, used_day: int
) -> LimitStatus:
    day_spent = used_day >= quota.per_day
    return LimitStatus(
        allowed=allowed,
        remaining_minute=max(0, quota.per_minute - used_minute),
        remaining_day=max(0, quota.per_day - used_day),
        reset_s=window.day_reset_s if day_spent else window.minute_reset_s,
        limit_minute=quota.per_minute,
        limit_day=quota.per_day,
    )
