"""The event log contract, against both implementations (memory; Redis for real)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.events.base import LOST, RESYNC, AppendStatus, Deliver, Event, EventLog
from server.events.memory import MemoryEventLog
from server.events.redis import HubUnavailable, RedisEventLog, RedisHub
from tests.conftest import REDIS_URL
from tests.support.redis_server import private_redis


@pytest.fixture(params=["memory", "redis"])
async def event_log(request: pytest.FixtureRequest) -> AsyncIterator[EventLog]:
    if request.param == "memory":
        yield MemoryEventLog(max_events=100)
        return
    hub = RedisHub(REDIS_URL)
    await hub.start()
    log = RedisEventLog(REDIS_URL, max_events=100, hub=hub)
    yield log
    await log.close()
    await hub.close()


def collect(into: list[Any]) -> Deliver:
    """A subscriber that keeps each event's seq, and each signal as it is."""
    return lambda d: into.append(d.seq if isinstance(d, Event) else d)


def sid() -> str:
    return uuid.uuid4().hex


async def settle() -> None:
    await asyncio.sleep(0.05)


async def test_seq_grows_by_one_and_events_carry_it(event_log: EventLog) -> None:
    s = sid()
    await event_log.create_session(s, "u")
    seqs = [await event_log.append(s, {"type": "x", "n": i}) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    events = await event_log.read_since(s, 0)
    assert events is not None
    assert [json.loads(e)["seq"] for _, e in events] == [1, 2, 3, 4, 5]
    assert [json.loads(e)["n"] for _, e in events] == [0, 1, 2, 3, 4]


async def test_idempotency_key_and_closed_scope(event_log: EventLog) -> None:
    s = sid()
    await event_log.create_session(s, "u")
    assert await event_log.append(s, {"type": "a"}, key="r1:classified", scope="r1") == 1
    assert await event_log.append(s, {"type": "a"}, key="r1:classified", scope="r1") == (
        AppendStatus.DUPLICATE
    )
    assert await event_log.append(s, {"type": "scan.done"}, key="r1:done") == 2
    assert await event_log.append(s, {"type": "d"}, key="r1:delta:0", scope="r1") == (
        AppendStatus.SCAN_CLOSED
    )
    assert await event_log.append(s, {"type": "scan.done"}, key="r1:done") == (
        AppendStatus.DUPLICATE
    )
    # Another scan of the same session is unaffected.
    assert await event_log.append(s, {"type": "a"}, key="r2:classified", scope="r2") == 3


async def test_append_many_is_append_in_order(event_log: EventLog) -> None:
    s = sid()
    await event_log.create_session(s, "u")
    delivered: list[int] = []
    subscription = await event_log.subscribe(s, collect(delivered))
    assert await event_log.append(s, {"type": "a"}, key="r1:a", scope="r1") == 1
    results = await event_log.append_many(
        s,
        [({"type": "b", "n": 0}, "r1:b0"), ({"type": "a"}, "r1:a"), ({"type": "b", "n": 1}, None)],
        scope="r1",
    )
    assert results == [2, AppendStatus.DUPLICATE, 3]
    await event_log.append(s, {"type": "scan.done"}, key="r1:done")
    assert await event_log.append_many(s, [({"type": "c"}, "r1:c"), ({"type": "d"}, None)],
                                       scope="r1") == [AppendStatus.SCAN_CLOSED] * 2
    assert await event_log.append_many(sid(), [({"type": "c"}, None)] * 3) == (
        [AppendStatus.SESSION_GONE] * 3
    )
    events = await event_log.read_since(s, 0)
    assert events is not None
    assert [json.loads(e)["type"] for _, e in events] == ["a", "b", "b", "scan.done"]
    assert [json.loads(e).get("n") for _, e in events][1:3] == [0, 1]
    await settle()
    assert delivered == [1, 2, 3, 4]
    await subscription.close()


async def test_an_append_reaches_this_process_subscribers_at_once_and_once(
    event_log: EventLog,
) -> None:
    """The server's own appends (scan.accepted, errors, a cancel) are delivered during the
    append, not a pub/sub round trip later; the pub/sub copy is not delivered again."""
    s = sid()
    await event_log.create_session(s, "u")
    got: list[Any] = []
    subscription = await event_log.subscribe(s, collect(got))
    for n in range(1, 21):
        seq = await event_log.append(s, {"type": "x", "n": n})
        assert got[-1] == seq == n  # already there when append returns
    await settle()
    assert got == list(range(1, 21))
    await subscription.close()


async def test_unknown_session(event_log: EventLog) -> None:
    assert await event_log.append(sid(), {"type": "a"}) == AppendStatus.SESSION_GONE
    assert await event_log.get_session(sid()) is None
    assert await event_log.read_since(sid(), 0) is None


async def test_read_since_detects_lost_history(event_log: EventLog) -> None:
    s = sid()
    await event_log.create_session(s, "u")
    for i in range(300):  # the log keeps about 100
        await event_log.append(s, {"type": "x", "n": i})
    assert await event_log.read_since(s, 1) is None
    recent = await event_log.read_since(s, 290)
    assert recent is not None and [seq for seq, _ in recent] == list(range(291, 301))
    assert await event_log.read_since(s, 300) == []
    assert await event_log.read_since(s, 301) is None  # a seq from the future


async def test_subscribers_receive_in_order(event_log: EventLog) -> None:
    s = sid()
    info = await event_log.create_session(s, "user-1")
    assert info.head == 0 and info.user_id == "user-1"
    got: list[tuple[int, str]] = []
    sub = await event_log.subscribe(s, lambda d: got.append(d) if isinstance(d, Event) else None)
    for i in range(10):
        await event_log.append(s, {"type": "x", "n": i})
    await settle()
    assert [seq for seq, _ in got] == list(range(1, 11))
    await sub.close()
    await event_log.append(s, {"type": "x"})
    await settle()
    assert len(got) == 10
    fetched = await event_log.get_session(s)
    assert fetched is not None and fetched.head == 11 and fetched.epoch == info.epoch


async def test_new_session_has_a_new_epoch(event_log: EventLog) -> None:
    a = await event_log.create_session(sid(), "u")
    b = await event_log.create_session(sid(), "u")
    assert a.epoch != b.epoch


async def test_hub_reconnects_and_asks_for_a_resync() -> None:
    """redis-py's pub/sub does not reconnect by itself; the hub must, and must say so."""
    hub = RedisHub(REDIS_URL)
    await hub.start()
    log = RedisEventLog(REDIS_URL, hub=hub)
    s = sid()
    await log.create_session(s, "u")
    got: list[int] = []
    await log.subscribe(s, collect(got))
    await log.append(s, {"type": "x"})
    await settle()
    admin = aioredis.Redis.from_url(REDIS_URL)
    await admin.client_kill_filter(_type="pubsub")
    for _ in range(100):
        if hub.reconnects:
            break
        await asyncio.sleep(0.05)
    assert hub.reconnects >= 1
    assert RESYNC in got
    await log.append(s, {"type": "x"})
    await settle()
    assert got[-1] == 2
    await admin.aclose()
    await log.close()
    await hub.close()


async def test_redis_publishes_a_batch_as_one_message() -> None:
    log = RedisEventLog(REDIS_URL)
    listener = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    s = sid()
    try:
        await log.create_session(s, "u")
        await pubsub.subscribe("wc:{" + s + "}")
        await log.append_many(s, [({"type": "d", "text": "line\nbreak"}, None)] * 3 + [
            ({"type": "scan.done"}, "r1:done")
        ])
        messages = []
        for _ in range(20):
            message = await pubsub.get_message(timeout=0.1)
            if message is not None:
                messages.append(message["data"])
        assert len(messages) == 1
        events = messages[0].split("\n")
        assert [json.loads(e)["seq"] for e in events] == [1, 2, 3, 4]
        assert json.loads(events[0])["text"] == "line\nbreak"
    finally:
        await pubsub.aclose()
        await listener.aclose()
        await log.close()


async def test_open_scans_follow_accepted_and_done(event_log: EventLog) -> None:
    """Open scans are kept beside the log, so they hold however far the log was trimmed."""
    s = sid()
    await event_log.create_session(s, "u")
    await event_log.append(s, {"type": "scan.accepted", "request_id": "r1", "scan_id": "a"},
                           key="r1:accepted")
    await event_log.append(s, {"type": "scan.accepted", "request_id": "r2", "scan_id": "b"},
                           key="r2:accepted")
    for i in range(150):  # past max_events (100): the accepted events are trimmed away
        await event_log.append(s, {"type": "coaching.delta", "request_id": "r1", "n": i})
    assert await event_log.open_scans(s) == {"r1": "a", "r2": "b"}
    await event_log.append(s, {"type": "scan.done", "request_id": "r1"}, key="r1:done")
    assert await event_log.open_scans(s) == {"r2": "b"}
    assert await event_log.open_scan(s, "r2") == "b"
    assert await event_log.open_scan(s, "r1") is None
    # A refused append (duplicate) changes nothing.
    await event_log.append(s, {"type": "scan.done", "request_id": "r2"}, key="r1:done")
    assert await event_log.open_scans(s) == {"r2": "b"}


async def test_open_chats_follow_the_claim_and_chat_done(event_log: EventLog) -> None:
    """Questions are open from their claim to their chat.done, apart from the open scans."""
    s = sid()
    await event_log.create_session(s, "u")
    assert await event_log.open_chat(s, "c1") is True
    assert await event_log.open_chat(s, "c1") is False  # a request id is used once
    assert await event_log.open_chat(s, "c2") is True
    await event_log.append(s, {"type": "scan.accepted", "request_id": "r1", "scan_id": "a"},
                           key="r1:accepted")
    assert await event_log.open_chats(s) == {"c1", "c2"}
    assert await event_log.open_scans(s) == {"r1": "a"}
    assert await event_log.open_scan(s, "c1") is None  # a question is not a scan
    await event_log.append(s, {"type": "chat.done", "request_id": "c1"}, key="c1:chat:done")
    assert await event_log.open_chats(s) == {"c2"}
    assert await event_log.open_chat(sid(), "c9") is False  # no such session
    assert await event_log.open_chats(sid()) == set()


async def test_touch_says_whether_the_session_exists(event_log: EventLog) -> None:
    s = sid()
    assert await event_log.touch(s) is False
    await event_log.create_session(s, "u")
    assert await event_log.touch(s) is True


async def test_append_to_a_deleted_session_tells_its_subscribers() -> None:
    """Someone deletes a live session's history: its connections learn at the next append."""
    hub = RedisHub(REDIS_URL)
    await hub.start()
    log = RedisEventLog(REDIS_URL, hub=hub)
    admin = aioredis.Redis.from_url(REDIS_URL)
    try:
        assert await hub.wait_up(5)
        s = sid()
        await log.create_session(s, "u")
        got: list[int] = []
        await log.subscribe(s, collect(got))
        await log.append(s, {"type": "x"})
        await admin.delete(*[k for k in await admin.keys("wc:{" + s + "}:*")])
        assert await log.append(s, {"type": "x"}) == AppendStatus.SESSION_GONE
        for _ in range(40):
            if LOST in got:
                break
            await asyncio.sleep(0.05)
        assert got == [1, LOST]
    finally:
        await admin.aclose()
        await log.close()
        await hub.close()


async def test_hub_down_waits_between_tries_and_refuses_subscribers() -> None:
    """No Redis at all: the hub neither spins nor pretends; subscribers are refused at once."""
    with private_redis() as redis_server:
        url = redis_server.url
    hub = RedisHub(url, backoff_max_s=0.4)  # nothing listens there any more
    await hub.start()
    try:
        await asyncio.sleep(1.5)
        assert not hub.healthy and hub.state == "down"
        # 0.05, 0.1, 0.2, 0.4, 0.4 ... s apart (with jitter): a handful, not thousands.
        assert 2 <= hub.attempts <= 20
        with pytest.raises(HubUnavailable):
            await hub.subscribe("wc:{x}", lambda _d: None)
    finally:
        await asyncio.wait_for(hub.close(), 5)


async def test_hub_survives_a_redis_restart() -> None:
    """Redis goes away and comes back empty: the hub reconnects by itself, resubscribes, and
    asks every subscriber to catch up (which then finds the history lost)."""
    with private_redis() as redis_server:
        hub = RedisHub(redis_server.url, backoff_max_s=0.2)
        await hub.start()
        log = RedisEventLog(redis_server.url, hub=hub)
        try:
            assert await hub.wait_up(5)
            s = sid()
            await log.create_session(s, "u")
            got: list[int] = []
            await log.subscribe(s, collect(got))
            redis_server.stop()
            for _ in range(100):
                if hub.state == "down":
                    break
                await asyncio.sleep(0.02)
            assert hub.state == "down" and not hub.healthy
            await asyncio.sleep(0.5)
            redis_server.start()
            assert await hub.wait_up(5)
            assert hub.reconnects == 1
            for _ in range(40):
                if RESYNC in got:
                    break
                await asyncio.sleep(0.05)
            assert got == [RESYNC]
            assert await log.read_since(s, 0) is None  # Redis kept nothing: history lost
            # The channel is live again: a new session's events arrive.
            await log.create_session(s, "u")
            await log.append(s, {"type": "x"})
            for _ in range(40):
                if 1 in got:
                    break
                await asyncio.sleep(0.05)
            assert got == [RESYNC, 1]
        finally:
            await log.close()
            await hub.close()


async def test_a_lease_has_one_owner_at_a_time(event_log: EventLog) -> None:
    s = sid()
    assert await event_log.lease(s, "r1", "a", 0.3)
    assert not await event_log.lease(s, "r1", "b", 0.3)
    assert await event_log.lease(s, "r1", "a", 0.3)  # renewed by its owner
    assert await event_log.lease(s, "r2", "b", 0.3)  # another request is another lease
    await event_log.release(s, "r1", "b")  # not b's to give back
    assert not await event_log.lease(s, "r1", "b", 0.3)
    await event_log.release(s, "r1", "a")
    assert await event_log.lease(s, "r1", "b", 0.2)
    await asyncio.sleep(0.35)  # expired: its owner died
    assert await event_log.lease(s, "r1", "c", 0.3)
