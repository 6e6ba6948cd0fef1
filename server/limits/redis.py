"""The rate limiter of distributed mode: counters in Redis, shared by every server process.

One Lua script reads both counters, decides, and increments both only if the request is
allowed, so concurrent hits from different processes can never overshoot a budget. Keys carry
their window (the minute number, the KST date) and expire soon after it ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from server.events.redis import client_options
from server.limits.base import Kind, LimitStatus, Quota, status, windows

# KEYS: minute counter, day counter.
# ARGV: minute limit, day limit, minute key ttl, day key ttl, 1 to count the request / 0 to peek.
# Returns {allowed, used this minute, used today}.
_SCRIPT = """
local used_m = tonumber(redis.call('GET', KEYS[1]) or '0')
local used_d = tonumber(redis.call('GET', KEYS[2]) or '0')
local allowed = used_m < tonumber(ARGV[1]) and used_d < tonumber(ARGV[2])
if allowed and ARGV[5] == '1' then
  used_m = redis.call('INCR', KEYS[1])
  if used_m == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
  used_d = redis.call('INCR', KEYS[2])
  if used_d == 1 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
end
return {allowed and 1 or 0, used_m, used_d}
"""


class RedisRateLimiter:
    def __init__(
        self, redis_url: str, quotas: Mapping[Kind, Quota], *, prefix: str = "wc:limit"
    ) -> None:
        self._redis: Redis = Redis.from_url(redis_url, **client_options())
        self._script: Any = self._redis.register_script(_SCRIPT)
        self._quotas = dict(quotas)
        self._prefix = prefix

    async def _run(
        self, user_id: str, kind: Kind, *, count: bool, now: float | None
    ) -> LimitStatus:
        quota, window = self._quotas[kind], windows(now)
        base = f"{self._prefix}:{kind}:{user_id}"
        allowed, used_minute, used_day = await self._script(
            keys=[f"{base}:m:{window.minute}", f"{base}:d:{window.day}"],
            args=[
                quota.per_minute,
                quota.per_day,
                window.minute_reset_s + 5,
                window.day_reset_s + 300,
                1 if count else 0,
            ],
        )
        return status(
            quota,
            window,
            allowed=bool(allowed),
            used_minute=int(used_minute),
            used_day=int(used_day),
        )

    async def hit(self, user_id: str, kind: Kind, *, now: float | None = None) -> LimitStatus:
        return await self._run(user_id, kind, count=True, now=now)

    async def peek(self, user_id: str, kind: Kind, *, now: float | None = None) -> LimitStatus:
        return await self._run(user_id, kind, count=False, now=now)

    async def close(self) -> None:
        await self._redis.aclose()
