"""Per-user rate limits and daily quotas on scans and chat.

``build_rate_limiter(settings)`` returns the in-memory limiter in embedded mode and the Redis
one in distributed mode; both have ``hit(user_id, kind)`` and ``peek(user_id, kind)``.
"""

from __future__ import annotations

from server.limits.base import Kind, LimitStatus, Quota, RateLimiter
from server.limits.memory import MemoryRateLimiter
from server.limits.redis import RedisRateLimiter
from server.settings import Settings

__all__ = [
    "Kind",
    "LimitStatus",
    "MemoryRateLimiter",
    "Quota",
    "RateLimiter",
    "RedisRateLimiter",
    "build_rate_limiter",
]


def build_rate_limiter(settings: Settings) -> RateLimiter:
    accounts = settings.accounts
    quotas: dict[Kind, Quota] = {
        "scan": Quota(accounts.scans_per_minute, accounts.scans_per_day),
        "chat": Quota(accounts.chats_per_minute, accounts.chats_per_day),
    }
    if settings.embedded:
        return MemoryRateLimiter(quotas)
    return RedisRateLimiter(settings.redis_url, quotas)
