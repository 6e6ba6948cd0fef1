"""Rate limits and daily quotas: per user on scans and chat, per client address on guest
accounts.

``build_rate_limiter(settings)`` returns the in-memory limiter in embedded mode and the Redis
one in distributed mode; both have ``hit(subject, kind)`` and ``peek(subject, kind)``, where
the subject is a user id, or :func:`address_key` of the client for ``"guest"``.
"""

from __future__ import annotations

from server.limits.address import address_key
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
    "address_key",
    "build_rate_limiter",
]


def build_rate_limiter(settings: Settings) -> RateLimiter:
    accounts = settings.accounts
    quotas: dict[Kind, Quota] = {
        "scan": Quota(accounts.scans_per_minute, accounts.scans_per_day),
        "chat": Quota(accounts.chats_per_minute, accounts.chats_per_day),
        "guest": Quota(accounts.guests_per_minute, accounts.guests_per_day),
    }
    if settings.embedded:
        return MemoryRateLimiter(quotas)
    return RedisRateLimiter(settings.redis_url, quotas)
