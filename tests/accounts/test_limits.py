"""Per-user rate limits and daily quotas, in memory (embedded) and on the real Redis.

The Redis tests use separate clients, as separate server processes would, and a key prefix of
their own so they never touch the server's counters.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from server.limits import MemoryRateLimiter, Quota, RedisRateLimiter
from server.limits.base import KST, Kind, windows
from tests.conftest import REDIS_URL

QUOTAS: dict[Kind, Quota] = {"scan": Quota(3, 5), "chat": Quota(2, 100)}
# 2026-03-01 14:59:30 UTC is 23:59:30 in Seoul: the KST day ends 30 s later.
# Both take ``now=`` beyond the RateLimiter interface, so tests can stand at any instant.
AnyLimiter = MemoryRateLimiter | RedisRateLimiter
BEFORE_MIDNIGHT_KST = datetime(2026, 3, 1, 23, 59, 30, tzinfo=KST).timestamp()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[AnyLimiter]:
    made: AnyLimiter
    if request.param == "memory":
        made = MemoryRateLimiter(QUOTAS)
    else:
        made = RedisRateLimiter(REDIS_URL, QUOTAS, prefix=f"wc:test:{uuid.uuid4().hex}")
    yield made
    await made.close()


def test_windows_follow_kst() -> None:
    w = windows(BEFORE_MIDNIGHT_KST)
    assert w.day == "20260301"
    assert w.day_reset_s == 30
    assert w.minute_reset_s == 30
    assert windows(BEFORE_MIDNIGHT_KST + 31).day == "20260302"


async def test_minute_limit_then_refill(limiter: AnyLimiter) -> None:
    t = 1_800_000_000.0  # the start of a minute
    hits = [await limiter.hit("u1", "scan", now=t + i) for i in range(4)]
    assert [h.allowed for h in hits] == [True, True, True, False]
    assert [h.remaining_minute for h in hits] == [2, 1, 0, 0]
    assert hits[-1].remaining_day == 2
    assert hits[-1].reset_s == 57
    # Refused hits are not counted: the next minute has its full rate again.
    nxt = await limiter.hit("u1", "scan", now=t + 60)
    assert nxt.allowed and nxt.remaining_minute == 2 and nxt.remaining_day == 1


async def test_daily_quota_resets_at_kst_midnight(limiter: AnyLimiter) -> None:
    t = BEFORE_MIDNIGHT_KST - 600
    for i in range(5):
        assert (await limiter.hit("u2", "scan", now=t + 61 * i)).allowed
    spent = await limiter.hit("u2", "scan", now=BEFORE_MIDNIGHT_KST)
    assert not spent.allowed and spent.remaining_day == 0
    assert spent.reset_s == 30  # until midnight in Seoul, not UTC
    tomorrow = await limiter.hit("u2", "scan", now=BEFORE_MIDNIGHT_KST + 31)
    assert tomorrow.allowed and tomorrow.remaining_day == 4


async def test_peek_counts_nothing_and_kinds_and_users_are_separate(
    limiter: AnyLimiter,
) -> None:
    for _ in range(3):
        peeked = await limiter.peek("u3", "chat")
    assert peeked.allowed and peeked.remaining_minute == 2
    assert (await limiter.hit("u3", "chat")).remaining_minute == 1
    assert (await limiter.hit("u3", "chat")).remaining_minute == 0
    assert not (await limiter.peek("u3", "chat")).allowed
    assert (await limiter.peek("u3", "scan")).allowed
    assert (await limiter.peek("u4", "chat")).remaining_minute == 2


async def test_redis_budget_holds_across_clients() -> None:
    """Many clients racing on one user's budget: exactly the limit gets through."""
    prefix = f"wc:test:{uuid.uuid4().hex}"
    quotas: dict[Kind, Quota] = {"scan": Quota(25, 1000), "chat": Quota(1, 1)}
    limiters = [RedisRateLimiter(REDIS_URL, quotas, prefix=prefix) for _ in range(4)]
    t = 1_800_000_000.0
    try:
        results = await asyncio.gather(
            *(limiters[i % 4].hit("racer", "scan", now=t) for i in range(100))
        )
    finally:
        for made in limiters:
            await made.close()
    assert sum(r.allowed for r in results) == 25


def _hammer(prefix: str, n: int, out: multiprocessing.Queue[int]) -> None:
    async def run() -> int:
        limiter = RedisRateLimiter(
            REDIS_URL, {"scan": Quota(30, 1000), "chat": Quota(1, 1)}, prefix=prefix
        )
        try:
            results = [await limiter.hit("shared", "scan", now=1_800_000_000.0) for _ in range(n)]
        finally:
            await limiter.close()
        return sum(r.allowed for r in results)

    out.put(asyncio.run(run()))


def test_redis_budget_holds_across_processes() -> None:
    prefix = f"wc:test:{uuid.uuid4().hex}"
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[int] = context.Queue()
    procs = [context.Process(target=_hammer, args=(prefix, 20, out)) for _ in range(3)]
    for p in procs:
        p.start()
    allowed = sum(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    assert allowed == 30
