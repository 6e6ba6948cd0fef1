"""Redis event log for distributed mode.

Per session (all keys share the hash tag ``{sid}`` so a Redis Cluster keeps them together):

* ``wc:{sid}:meta``  hash: user id and epoch (the epoch changes whenever history is lost);
* ``wc:{sid}:seq``   counter: the last seq;
* ``wc:{sid}:keys``  hash: idempotency key → seq, which makes appends exactly-once;
* ``wc:{sid}:log``   capped stream whose entry ids are ``<seq>-0``: the replay log;
* channel ``wc:{sid}``: live fan-out of every appended event.

One Lua script does check-assign-store-publish atomically, so a Celery task that runs twice
after a crash cannot emit an event twice, and no event can be published without being logged.
It takes several events at once, so a burst (coaching tokens) costs one round trip, and
publishes them as one message (events separated by newlines, which JSON text never contains
raw), so the subscriber parses one message for the burst.

Each server process holds ONE pub/sub connection (:class:`RedisHub`), subscribes to a channel
per connected session and routes messages to them; redis-py's asyncio pub/sub does not
reconnect by itself (redis-py #2089), so the hub does, and then tells every session to catch up
from the log, because messages published while it was away are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.events.base import RESYNC, Deliver, SessionInfo, encode_payload, seq_of

log = logging.getLogger(__name__)

_APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-3} end
local results = {}
local published = {}
for i = 5, #ARGV, 2 do
  local key = ARGV[i + 1]
  if ARGV[4] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[4] .. ':done') == 1 then
    results[#results + 1] = -1
  elseif key ~= '' and redis.call('HEXISTS', KEYS[3], key) == 1 then
    results[#results + 1] = -2
  else
    local seq = redis.call('INCR', KEYS[2])
    local event = '{"seq":' .. seq .. ',' .. string.sub(ARGV[i], 2)
    if key ~= '' then redis.call('HSET', KEYS[3], key, seq) end
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[1], seq .. '-0', 'e', event)
    published[#published + 1] = event
    results[#results + 1] = seq
  end
end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
if #published > 0 then redis.call('PUBLISH', ARGV[3], table.concat(published, '\\n')) end
return results
"""

_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
return 1
"""


#: How long past its own timeout a blocking call may take before it counts as lost.
BLOCKING_MARGIN_S = 10.0


def _keys(session_id: str) -> list[str]:
    tag = "wc:{" + session_id + "}"
    return [f"{tag}:meta", f"{tag}:seq", f"{tag}:keys", f"{tag}:log"]


def _channel(session_id: str) -> str:
    return "wc:{" + session_id + "}"


class RedisHub:
    """The process's single pub/sub connection, routing messages to local subscribers."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._client = aioredis.Redis.from_url(url, health_check_interval=15)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=False)
        self._routes: dict[str, list[Deliver]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.reconnects = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="redis-hub")

    @property
    def healthy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def subscribe(self, channel: str, deliver: Deliver) -> None:
        async with self._lock:
            routes = self._routes.setdefault(channel, [])
            routes.append(deliver)
            if len(routes) > 1:
                return
            confirmed = self._confirmed[channel] = asyncio.Event()
            await self._pubsub.subscribe(channel)
        # The caller reads the backlog next; it must not do so before Redis has registered the
        # subscription, or an event published in between would be neither read nor received.
        await asyncio.wait_for(confirmed.wait(), timeout=5)

    async def unsubscribe(self, channel: str, deliver: Deliver) -> None:
        async with self._lock:
            routes = self._routes.get(channel)
            if not routes or deliver not in routes:
                return
            routes.remove(deliver)
            if not routes:
                del self._routes[channel]
                self._confirmed.pop(channel, None)
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
                    await self._pubsub.unsubscribe(channel)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                if not self._pubsub.subscribed and not self._routes:
                    # get_message() returns at once when nothing is subscribed; don't spin.
                    await asyncio.sleep(0.05)
                    continue
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.05
                if message is None:
                    continue
                channel = message["channel"]
                if isinstance(channel, bytes):
                    channel = channel.decode()
                kind = message["type"]
                if kind == "subscribe":
                    event = self._confirmed.get(channel)
                    if event is not None:
                        event.set()
                elif kind == "message":
                    data = message["data"]
                    text = data.decode() if isinstance(data, bytes) else data
                    routes = list(self._routes.get(channel, ()))
                    for item in text.split("\n"):
                        seq = seq_of(item)
                        for deliver in routes:
                            deliver(seq, item)
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("redis pub/sub connection lost (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                await self._reconnect()
            except Exception:  # the hub must never die silently (python-socketio #1581)
                log.exception("redis hub failed to route a message")

    async def _reconnect(self) -> None:
        async with self._lock:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = self._client.pubsub(ignore_subscribe_messages=False)
            try:
                if self._routes:
                    await self._pubsub.subscribe(*self._routes)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                return  # the loop retries
            self.reconnects += 1
            for routes in self._routes.values():
                for deliver in routes:
                    deliver(RESYNC, "")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._client.aclose()


class _RedisSubscription:
    def __init__(self, hub: RedisHub, channel: str, deliver: Deliver) -> None:
        self._hub = hub
        self._channel = channel
        self._deliver = deliver

    async def close(self) -> None:
        await self._hub.unsubscribe(self._channel, self._deliver)


class RedisEventLog:
    delivers_on_append = False

    def __init__(
        self,
        url: str,
        *,
        ttl_s: int = 600,
        max_events: int = 2000,
        hub: RedisHub | None = None,
    ) -> None:
        self.redis = aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        # BLPOP waits up to the clarify timeout (60 s), far past redis-py's default socket
        # timeout (5 s), which would end the wait with a TimeoutError: blocking calls get
        # their own pool without a socket timeout, bounded per call in wait_answer.
        self._blocking = aioredis.Redis.from_url(
            url, decode_responses=True, health_check_interval=30, socket_timeout=None
        )
        self._ttl_s = ttl_s
        self._max_events = max_events
        self._append = self.redis.register_script(_APPEND)
        self._touch = self.redis.register_script(_TOUCH)
        self._hub = hub

    async def create_session(self, session_id: str, user_id: str) -> SessionInfo:
        meta, seq, keys, stream = _keys(session_id)
        epoch = secrets.token_hex(8)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(meta, seq, keys, stream)
            pipe.hset(meta, mapping={"user_id": user_id, "epoch": epoch})
            pipe.set(seq, 0)
            for key in (meta, seq):
                pipe.expire(key, self._ttl_s)
            await pipe.execute()
        return SessionInfo(session_id, user_id, epoch, 0)

    async def get_session(self, session_id: str) -> SessionInfo | None:
        meta, seq, _, _ = _keys(session_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(meta)
            pipe.get(seq)
            fields, head = await pipe.execute()
        if not fields or head is None:
            return None
        return SessionInfo(session_id, fields["user_id"], fields["epoch"], int(head))

    async def touch(self, session_id: str) -> None:
        await self._touch(keys=_keys(session_id), args=[self._ttl_s])

    async def append(
        self,
        session_id: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        scope: str | None = None,
    ) -> int:
        return (await self.append_many(session_id, [(payload, key)], scope=scope))[0]

    async def append_many(
        self,
        session_id: str,
        events: Sequence[tuple[dict[str, Any], str | None]],
        *,
        scope: str | None = None,
    ) -> list[int]:
        args: list[str | int] = [self._max_events, self._ttl_s, _channel(session_id), scope or ""]
        for payload, key in events:
            args += [encode_payload(payload), key or ""]
        results = await self._append(keys=_keys(session_id), args=args)
        if len(results) == 1 and len(events) > 1:  # the session is gone: nothing was written
            return [int(results[0])] * len(events)
        return [int(result) for result in results]

    async def claim(self, session_id: str, key: str) -> bool:
        meta, _, keys, _ = _keys(session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.exists(meta)
            pipe.hsetnx(keys, key, 0)
            pipe.expire(keys, self._ttl_s)
            exists, fresh, _ = await pipe.execute()
        if not exists:
            await self.redis.hdel(keys, key)
            return False
        return bool(fresh)

    async def put_answer(self, session_id: str, request_id: str, answer: str) -> None:
        key = "wc:{" + session_id + "}:answer:" + request_id
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, answer)
            pipe.ltrim(key, -8, -1)
            pipe.expire(key, self._ttl_s)
            await pipe.execute()

    async def wait_answer(self, session_id: str, request_id: str, timeout: float) -> str | None:
        key = "wc:{" + session_id + "}:answer:" + request_id
        # BLPOP holds a pooled connection while it waits; the pool grows for it. The server
        # ends the wait; the margin bounds it should the connection die silently.
        wait = max(timeout, 0.01)
        async with asyncio.timeout(wait + BLOCKING_MARGIN_S):
            result = await self._blocking.blpop([key], timeout=wait)
        if result is None:
            return None
        return str(result[1])

    async def read_since(self, session_id: str, after_seq: int) -> list[tuple[int, str]] | None:
        _, seq_key, _, stream = _keys(session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(seq_key)
            pipe.xrange(stream, min=f"{after_seq + 1}-0", max="+")
            head, entries = await pipe.execute()
        if head is None or after_seq > int(head):
            return None
        if after_seq == int(head):
            return []
        events = [(int(entry_id.split("-", 1)[0]), fields["e"]) for entry_id, fields in entries]
        if not events or events[0][0] != after_seq + 1:
            return None  # trimmed past what the client has: history is lost
        return events

    async def subscribe(self, session_id: str, deliver: Deliver) -> _RedisSubscription:
        if self._hub is None:
            raise RuntimeError("this event log was built without a pub/sub hub")
        channel = _channel(session_id)
        await self._hub.subscribe(channel, deliver)
        return _RedisSubscription(self._hub, channel, deliver)

    async def close(self) -> None:
        await self._blocking.aclose()
        await self.redis.aclose()
