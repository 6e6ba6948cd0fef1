"""The rate limiter of embedded mode: counters in this process's memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from server.limits.base import Kind, LimitStatus, Quota, Windows, status, windows


@dataclass(slots=True)
class _Counter:
    minute: int = -1
    used_minute: int = 0
    day: str = ""
    used_day: int = 0

    def roll(self, window: Windows) -> None:
        if self.minute != window.minute:
            self.minute, self.used_minute = window.minute, 0
        if self.day != window.day:
            self.day, self.used_day = window.day, 0


class MemoryRateLimiter:
    """One process only: correct for the embedded server, wrong behind a load balancer.

    There is no ``await`` between reading and updating a counter, so the event loop makes each
    hit atomic without a lock.
    """

    def __init__(self, quotas: Mapping[Kind, Quota]) -> None:
        self._quotas = dict(quotas)
        self._counters: dict[tuple[str, Kind], _Counter] = {}
        self._day = ""

    def _counter(self, user_id: str, kind: Kind, window: Windows) -> _Counter:
        if window.day != self._day:
            # Yesterday's counters are worthless: drop them so memory tracks today's users.
            self._counters.clear()
            self._day = window.day
        counter = self._counters.setdefault((user_id, kind), _Counter())
        counter.roll(window)
        return counter

    async def hit(self, user_id: str, kind: Kind, *, now: float | None = None) -> LimitStatus:
        quota, window = self._quotas[kind], windows(now)
        counter = self._counter(user_id, kind, window)
        allowed = counter.used_minute < quota.per_minute and counter.used_day < quota.per_day
        if allowed:
            counter.used_minute += 1
            counter.used_day += 1
        return status(
            quota,
            window,
            allowed=allowed,
            used_minute=counter.used_minute,
            used_day=counter.used_day,
        )

    async def peek(self, user_id: str, kind: Kind, *, now: float | None = None) -> LimitStatus:
        quota, window = self._quotas[kind], windows(now)
        counter = self._counter(user_id, kind, window)
        allowed = counter.used_minute < quota.per_minute and counter.used_day < quota.per_day
        return status(
            quota,
            window,
            allowed=allowed,
            used_minute=counter.used_minute,
            used_day=counter.used_day,
        )

    async def close(self) -> None:
        self._counters.clear()
