"""The event emitter of a request: order, batching, cancellation, failures (memory and Redis)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from protocol.messages import CoachingDelta, ScanDone, ScanStatus
from server.events.base import EventLog
from server.events.memory import MemoryEventLog
from server.events.redis import RedisEventLog
from server.pipeline.emitter import EventEmitter, EventsNotDelivered, RequestClosed
from tests.conftest import REDIS_URL


class Counting:
    """Wraps a real log and counts the round trips the emitter makes."""

    def __init__(self, inner: EventLog) -> None:
        self.inner = inner
        self.calls: list[int] = []
        self.fail: Exception | None = None

    async def append_many(
        self, session_id: str, events: Sequence[tuple[dict[str, Any], str | None]], *,
        scope: str | None = None,
    ) -> list[int]:
        self.calls.append(len(events))
        if self.fail is not None:
            raise self.fail
        return await self.inner.append_many(session_id, events, scope=scope)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(params=["memory", "redis"])
async def event_log(request: pytest.FixtureRequest) -> AsyncIterator[EventLog]:
    if request.param == "memory":
        yield MemoryEventLog()
        return
    log = RedisEventLog(REDIS_URL)
    yield log
    await log.close()


def delta(i: int) -> CoachingDelta:
    return CoachingDelta(request_id="r1", scan_id="s1", index=i, text=f"step {i}")


async def new_session(event_log: EventLog) -> str:
    sid = uuid.uuid4().hex
    await event_log.create_session(sid, "u")
    return sid


async def test_a_burst_goes_in_few_round_trips_and_in_order(event_log: EventLog) -> None:
    sid = await new_session(event_log)
    counting = Counting(event_log)
    emitter = EventEmitter(counting, sid, "r1")  # type: ignore[arg-type]
    for i in range(100):
        await emitter.emit(delta(i), f"delta:{i}")
    done = ScanDone(request_id="r1", scan_id="s1", status=ScanStatus.COMPLETED)
    assert await emitter.finish(done) == 101
    assert sum(counting.calls) == 101
    assert len(counting.calls) <= 4, counting.calls
    events = await event_log.read_since(sid, 0)
    assert events is not None
    parsed = [json.loads(e) for _, e in events]
    assert [p.get("index") for p in parsed[:-1]] == list(range(100))
    assert parsed[-1]["type"] == "scan.done"


async def test_emit_does_not_wait_for_the_log(event_log: EventLog) -> None:
    sid = await new_session(event_log)
    gate = asyncio.Event()

    class Slow(Counting):
        async def append_many(self, *args: Any, **kwargs: Any) -> list[int]:
            await gate.wait()
            return await super().append_many(*args, **kwargs)

    slow = Slow(event_log)
    emitter = EventEmitter(slow, sid, "r1")  # type: ignore[arg-type]
    await asyncio.wait_for(emitter.emit(delta(0), "delta:0"), 1)
    await asyncio.wait_for(emitter.emit(delta(1), "delta:1"), 1)
    flushing = asyncio.create_task(emitter.flush())
    await asyncio.sleep(0.05)
    assert not flushing.done()
    gate.set()
    await asyncio.wait_for(flushing, 2)
    assert slow.calls == [1, 1]  # the second waited for the first round trip, then went alone


async def test_a_cancelled_scan_stops_the_producer(event_log: EventLog) -> None:
    sid = await new_session(event_log)
    emitter = EventEmitter(event_log, sid, "r1")
    await emitter.emit(delta(0), "delta:0")
    await emitter.flush()
    # The client cancels: the connection appends scan.done for the request.
    cancelled = ScanDone(request_id="r1", scan_id="s1", status=ScanStatus.CANCELLED)
    await event_log.append(sid, cancelled.model_dump(mode="json"), key="r1:done")
    await emitter.emit(delta(1), "delta:1")  # queued: the log's answer is not known yet
    with pytest.raises(RequestClosed):
        await emitter.flush()
    with pytest.raises(RequestClosed):
        await emitter.emit(delta(2), "delta:2")
    done = ScanDone(request_id="r1", scan_id="s1", status=ScanStatus.COMPLETED)
    assert await emitter.finish(done) < 0  # not appended: the scan has its scan.done
    events = await event_log.read_since(sid, 0)
    assert events is not None
    assert [json.loads(e)["type"] for _, e in events] == ["coaching.delta", "scan.done"]


async def test_finish_takes_what_is_queued_and_held_back_in_one_round_trip(
    event_log: EventLog,
) -> None:
    sid = await new_session(event_log)
    counting = Counting(event_log)
    emitter = EventEmitter(counting, sid, "r1")  # type: ignore[arg-type]
    await emitter.emit(delta(0), "delta:0")
    await emitter.emit(delta(1), "delta:1")  # both in the first round trip
    done = ScanDone(request_id="r1", scan_id="s1", status=ScanStatus.COMPLETED)
    assert await emitter.finish(done, after=[(delta(2), "delta:2")]) == 4
    assert counting.calls == [2, 2]  # then the held-back event with scan.done
    events = await event_log.read_since(sid, 0)
    assert events is not None
    assert [json.loads(e).get("index") for _, e in events] == [0, 1, 2, None]


async def test_a_redelivered_task_appends_nothing_twice(event_log: EventLog) -> None:
    sid = await new_session(event_log)
    for _ in range(2):
        emitter = EventEmitter(event_log, sid, "r1")
        for i in range(3):
            await emitter.emit(delta(i), f"delta:{i}")
        await emitter.flush()
    events = await event_log.read_since(sid, 0)
    assert events is not None and len(events) == 3


async def test_an_unreachable_log_surfaces_at_the_next_emit(event_log: EventLog) -> None:
    sid = await new_session(event_log)
    counting = Counting(event_log)
    counting.fail = RedisConnectionError("redis is down")
    emitter = EventEmitter(counting, sid, "r1", patience_s=0.3)  # type: ignore[arg-type]
    await emitter.emit(delta(0), "delta:0")
    with pytest.raises(EventsNotDelivered):
        await emitter.flush()
    with pytest.raises(EventsNotDelivered):
        await emitter.emit(delta(1), "delta:1")
    assert len(counting.calls) > 2  # retried before giving up...
    assert len(counting.calls) < 12  # ...with backoff, not in a hot loop


class Flaky(Counting):
    """Fails the first ``failures`` round trips; with ``written``, each failure happens after
    the log did the work (the reply was lost), as a connection dropped mid-call would."""

    def __init__(self, inner: EventLog, failures: int, *, written: bool = False) -> None:
        super().__init__(inner)
        self.failures = failures
        self.written = written

    async def append_many(
        self, session_id: str, events: Sequence[tuple[dict[str, Any], str | None]], *,
        scope: str | None = None,
    ) -> list[int]:
        self.calls.append(len(events))
        if self.failures:
            self.failures -= 1
            if self.written:
                await self.inner.append_many(session_id, events, scope=scope)
            raise RedisTimeoutError("Timeout reading from socket")
        return await self.inner.append_many(session_id, events, scope=scope)


@pytest.mark.parametrize("written", [False, True])
async def test_transient_failures_are_retried_and_nothing_is_appended_twice(
    event_log: EventLog, written: bool
) -> None:
    sid = await new_session(event_log)
    flaky = Flaky(event_log, failures=3, written=written)
    emitter = EventEmitter(flaky, sid, "r1", patience_s=5)  # type: ignore[arg-type]
    for i in range(3):
        await emitter.emit(delta(i), f"delta:{i}")
    await emitter.flush()
    flaky.failures = 2
    done = ScanDone(request_id="r1", scan_id="s1", status=ScanStatus.COMPLETED)
    await emitter.finish(done, after=[(delta(3), "delta:3")])
    events = await event_log.read_since(sid, 0)
    assert events is not None
    parsed = [json.loads(e) for _, e in events]
    assert [p.get("index") for p in parsed] == [0, 1, 2, 3, None]
    assert parsed[-1]["type"] == "scan.done"


async def test_finish_writes_scan_done_after_an_earlier_failure_and_carries_what_failed(
    event_log: EventLog,
) -> None:
    sid = await new_session(event_log)
    counting = Counting(event_log)
    counting.fail = RedisConnectionError("redis is down")
    emitter = EventEmitter(counting, sid, "r1", patience_s=0.2)  # type: ignore[arg-type]
    await emitter.emit(delta(0), "delta:0")
    with pytest.raises(EventsNotDelivered):
        await emitter.flush()
    counting.fail = None  # Redis is back
    done = ScanDone(request_id="r1", scan_id="s1", status=ScanStatus.FAILED)
    assert await emitter.finish(done) > 0
    events = await event_log.read_since(sid, 0)
    assert events is not None
    assert [json.loads(e)["type"] for _, e in events] == ["coaching.delta", "scan.done"]


async def test_finish_raises_events_not_delivered_when_the_log_stays_away(
    event_log: EventLog,
) -> None:
    sid = await new_session(event_log)
    counting = Counting(event_log)
    counting.fail = RedisConnectionError("redis is down")
    emitter = EventEmitter(counting, sid, "r1", patience_s=0.2)  # type: ignore[arg-type]
    done = ScanDone(request_id="r1", scan_id="s1", status=ScanStatus.COMPLETED)
    with pytest.raises(EventsNotDelivered):
        await emitter.finish(done)
    assert await event_log.read_since(sid, 0) == []


async def test_a_non_transient_failure_is_not_retried(event_log: EventLog) -> None:
    sid = await new_session(event_log)
    counting = Counting(event_log)
    counting.fail = ValueError("a bug, not an outage")
    emitter = EventEmitter(counting, sid, "r1")  # type: ignore[arg-type]
    done = ScanDone(request_id="r1", scan_id="s1", status=ScanStatus.COMPLETED)
    with pytest.raises(ValueError):
        await asyncio.wait_for(emitter.finish(done), 1)
    assert counting.calls == [1]


async def test_a_gone_session_lets_the_work_go_on(event_log: EventLog) -> None:
    emitter = EventEmitter(event_log, uuid.uuid4().hex, "r1")
    await emitter.emit(delta(0), "delta:0")
    await emitter.flush()
    assert emitter.session_gone
