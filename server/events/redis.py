"""Redis event log for distributed mode.

Per session (all keys share the hash tag ``{sid}`` so a Redis Cluster keeps them together):

* ``wc:{sid}:meta``  hash: user id and epoch (the epoch changes whenever history is lost);
* ``wc:{sid}:seq``   counter: the last seq;
* ``wc:{sid}:keys``  hash: idempotency key → seq, which makes appends exactly-once;
* ``wc:{sid}:log``   capped stream whose entry ids are ``<seq>-0``: the replay log;
* ``wc:{sid}:open``  hash: request id → scan id of every scan accepted and not yet done, and
  ``#<request id>`` for every question claimed and not yet answered, so a connection finds
  what is open without reading the log (which is trimmed);
* channel ``wc:{sid}``: live fan-out of every appended event.

One Lua script does check-assign-store-publish atomically, so a Celery task that runs twice
after a crash cannot emit an event twice, and no event can be published without being logged.
It takes several events at once, so a burst (coaching tokens) costs one round trip, and
publishes them as one message (events separated by newlines, which JSON text never contains
raw), so the subscriber parses one message for the burst.

An append to a session whose log is gone publishes :data:`HISTORY_LOST_MARK` on its channel, so
a connection still open on it learns at once and closes with 1011 rather than waiting for
events that will never come.

Each server process holds ONE pub/sub connection (:class:`RedisHub`), subscribes to a channel
per connected session and routes messages to them; the hub reconnects by itself, with backoff,
and then tells every session to catch up from the log, because messages published while it was
away are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import RedisError

from server.events.base import (
    HISTORY_LOST_MARK,
    LOST,
    RESYNC,
    Deliver,
    Delivery,
    Event,
    SessionInfo,
    accepted_key,
    done_key,
    encode_payload,
    seq_of,
    with_seq,
)
from server.metrics import REDIS_HUB_RECONNECTS, REDIS_HUB_UP

log = logging.getLogger(__name__)

_APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- The session's history is gone (expired or deleted) while someone still writes to it:
  -- tell its connections, which close with 1011 instead of waiting in silence.
  redis.call('PUBLISH', ARGV[3], ARGV[5])
  return {-3}
end
local results = {}
local published = {}
for i = 6, #ARGV, 3 do
  local key = ARGV[i + 1]
  local open = ARGV[i + 2]
  -- ARGV[4]: the key whose presence closes the scope (done_key of the request), or ''.
  if ARGV[4] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1 then
    results[#results + 1] = -1
  elseif key ~= '' and redis.call('HEXISTS', KEYS[3], key) == 1 then
    results[#results + 1] = -2
  else
    local seq = redis.call('INCR', KEYS[2])
    local event = '{"seq":' .. seq .. ',' .. string.sub(ARGV[i], 2)
    if key ~= '' then redis.call('HSET', KEYS[3], key, seq) end
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[1], seq .. '-0', 'e', event)
    -- Open scans, kept beside the log: "+<request id> <scan id>" opens, "-<request id>" ends.
    if open ~= '' then
      local sign = string.sub(open, 1, 1)
      local rest = string.sub(open, 2)
      if sign == '+' then
        local space = string.find(rest, ' ', 1, true)
        redis.call('HSET', KEYS[5], string.sub(rest, 1, space - 1), string.sub(rest, space + 1))
      else
        redis.call('HDEL', KEYS[5], rest)
      end
    end
    published[#published + 1] = event
    results[#results + 1] = seq
  end
end
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
if #published > 0 then redis.call('PUBLISH', ARGV[3], table.concat(published, '\\n')) end
return results
"""

_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
return 1
"""


_LEASE = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


def client_options() -> dict[str, Any]:
    """Connection options of every Redis client but the hub's.

    redis-py retries nothing unless told to, so the first command on each pooled connection
    after a Redis restart failed ("Connection closed by server"), although Redis was back.
    A few quick retries on a fresh connection ride that out. A retried command may, rarely,
    have run already (the reply was lost): appends are idempotent by key, and the callers
    that see ``DUPLICATE`` for their own key check which event holds it.
    """
    return {
        "health_check_interval": 30,
        "socket_connect_timeout": 3,
        "socket_keepalive": True,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 3),
    }

#: How long past its own timeout a blocking call may take before it counts as lost.
BLOCKING_MARGIN_S = 10.0


def _keys(session_id: str) -> list[str]:
    tag = "wc:{" + session_id + "}"
    return [f"{tag}:meta", f"{tag}:seq", f"{tag}:keys", f"{tag}:log", f"{tag}:open"]


def _channel(session_id: str) -> str:
    return "wc:{" + session_id + "}"


#: Marks an open question's field in the open hash; request ids never contain it.
_CHAT = "#"


def _open_op(payload: dict[str, Any]) -> str:
    """How an event changes the session's open requests (see the append script)."""
    kind, request_id = payload.get("type"), payload.get("request_id")
    if not request_id:
        return ""
    if kind == "scan.accepted" and payload.get("scan_id"):
        return f"+{request_id} {payload['scan_id']}"
    if kind == "scan.done":
        return f"-{request_id}"
    if kind == "chat.done":
        return f"-{_CHAT}{request_id}"
    return ""


#: Most local seqs remembered per channel before the memory is cleared.
_MAX_LOCAL = 256


class HubUnavailable(Exception):
    """The hub has no live pub/sub connection, so events cannot reach this process now."""


class RedisHub:
    """The process's single pub/sub connection, routing messages to local subscribers.

    One task owns the connection. It connects, subscribes to a channel of its own (so the
    connection exists, and is health-checked, even while no session is open) and to every
    routed channel, then reads. Every failure, whatever its kind, ends in a wait that grows
    with each failed try (jittered, capped at ``backoff_max_s``) before the next connect: the
    hub can never spin. After a reconnect every subscriber gets ``RESYNC`` and catches up from
    the log, because messages published while it was away are gone; the hub's own client does
    not retry internally, so no reconnect happens without that resync.

    ``state`` (``starting``, ``up``, ``down``, ``closed``) and ``healthy`` report it to
    ``/readyz``; a state change is logged once, not every retry.
    """

    SUBSCRIBE_TIMEOUT_S = 5.0
    #: A connection that held this long resets the backoff.
    STABLE_AFTER_S = 10.0

    def __init__(self, url: str, *, backoff_max_s: float = 2.0) -> None:
        self._client = aioredis.Redis.from_url(
            url,
            health_check_interval=10,
            socket_connect_timeout=3,
            socket_keepalive=True,
            # Errors must reach the hub's loop: redis-py's own retry would reconnect and
            # resubscribe silently, and nobody would catch up on what was missed meanwhile.
            retry=Retry(NoBackoff(), 0),
        )
        self._backoff_max_s = backoff_max_s
        self._pubsub: PubSub | None = None
        self._routes: dict[str, list[Deliver]] = {}
        #: Seqs of events this process appended and delivered at once, per channel: their
        #: pub/sub copies are dropped here, so that each subscriber gets each event once.
        self._local: dict[str, set[int]] = {}
        #: Highest seq pub/sub brought per channel: pub/sub delivers a channel's events in
        #: seq order, so a local event at or below it has come that way already (the publish
        #: can overtake the append's own reply).
        self._pubsub_head: dict[str, int] = {}
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._own_channel = f"wc:hub:{secrets.token_hex(8)}"
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._up = asyncio.Event()
        self.state = "starting"
        self.last_error: str | None = None
        self.reconnects = 0
        self.attempts = 0
        self._connected_once = False

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="redis-hub")

    @property
    def healthy(self) -> bool:
        return self._up.is_set() and self._task is not None and not self._task.done()

    async def wait_up(self, timeout: float) -> bool:
        """Wait until the hub is subscribed; False if it is not within ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), timeout)
        return self._up.is_set()

    async def subscribe(self, channel: str, deliver: Deliver) -> None:
        """Route ``channel`` to ``deliver``; returns once Redis has registered the channel,
        so a caller that reads the backlog next cannot miss an event published in between.
        Raises :class:`HubUnavailable` when the hub is down or Redis does not confirm."""
        if not self._up.is_set():
            raise HubUnavailable("the Redis pub/sub connection is down")
        routes = self._routes.setdefault(channel, [])
        routes.append(deliver)
        confirmed = self._pending.get(channel)
        try:
            if confirmed is None:
                if len(routes) > 1:
                    return  # already subscribed and confirmed
                confirmed = self._pending[channel] = asyncio.get_running_loop().create_future()
                async with self._lock:
                    pubsub = self._pubsub
                    if pubsub is None:
                        raise HubUnavailable("the Redis pub/sub connection is down")
                    await pubsub.subscribe(channel)
            await asyncio.wait_for(asyncio.shield(confirmed), self.SUBSCRIBE_TIMEOUT_S)
        except BaseException as exc:
            self._drop_route(channel, deliver)
            if isinstance(exc, TimeoutError):
                # Redis did not confirm: the connection may be half-open (a partition), which
                # reads alone would not notice for minutes. Drop it; the loop reconnects.
                self._kick()
            if isinstance(exc, RedisError | OSError | TimeoutError):
                raise HubUnavailable(f"could not subscribe ({type(exc).__name__})") from exc
            raise

    def _kick(self) -> None:
        pubsub = self._pubsub
        connection = pubsub.connection if pubsub is not None else None
        if connection is not None and self._up.is_set():
            log.warning("redis did not confirm a subscription; reconnecting the hub")
            # Closing the transport makes the reader fail at once; the loop then reconnects.
            writer = getattr(connection, "_writer", None)
            if writer is not None:
                writer.close()

    def _drop_route(self, channel: str, deliver: Deliver) -> bool:
        """Remove one route; True when the channel has none left."""
        routes = self._routes.get(channel)
        if routes is None or deliver not in routes:
            return False
        routes.remove(deliver)
        if routes:
            return False
        del self._routes[channel]
        self._local.pop(channel, None)
        self._pubsub_head.pop(channel, None)
        pending = self._pending.pop(channel, None)
        if pending is not None and not pending.done():
            pending.cancel()
        return True

    async def unsubscribe(self, channel: str, deliver: Deliver) -> None:
        if not self._drop_route(channel, deliver) or not self._up.is_set():
            return  # a reconnect subscribes only to the channels still routed
        async with self._lock:
            if self._pubsub is not None and channel not in self._routes:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(channel)

    # ------------------------------------------------------------------ the connection

    async def _run(self) -> None:
        delay = 0.05
        while True:
            up_since: float | None = None
            try:
                await self._connect()
                up_since = time.monotonic()
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure path waits below: never a hot loop
                self._went_down(exc)
            await self._disconnect()
            # The wait grows again unless the connection had held a while: one that Redis
            # drops as soon as it is made (say, for its output buffer) must not thrash.
            if up_since is not None and time.monotonic() - up_since > self.STABLE_AFTER_S:
                delay = 0.05
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._backoff_max_s)

    async def _connect(self) -> None:
        self.attempts += 1
        async with self._lock:
            pubsub = self._client.pubsub(ignore_subscribe_messages=False)
            self._pubsub = pubsub
            channels = [self._own_channel, *self._routes]
            waiting = set(channels)
            await pubsub.subscribe(*channels)
            # Up only once Redis has confirmed every channel: a session that catches up on
            # RESYNC must not read the log before its channel is live again.
            deadline = time.monotonic() + self.SUBSCRIBE_TIMEOUT_S
            while waiting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("Redis did not confirm the subscriptions")
                message = await pubsub.get_message(timeout=min(remaining, 1.0))
                if message is not None:
                    waiting.discard(_text(message.get("channel")))
                    self._dispatch(message)
        reconnected = self._connected_once
        self._connected_once = True
        if self.state == "down":
            log.warning("redis pub/sub connection is back")
        self.state, self.last_error = "up", None
        self._up.set()
        REDIS_HUB_UP.set(1)
        if reconnected:
            self.reconnects += 1
            REDIS_HUB_RECONNECTS.inc()
            # Copies published while the hub was away are gone: nothing left to drop.
            self._local.clear()
            self._pubsub_head.clear()
            for routes in list(self._routes.values()):
                for deliver in list(routes):
                    _call(deliver, RESYNC)

    async def _listen(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None:
                self._dispatch(message)

    def _went_down(self, exc: BaseException) -> None:
        self._up.clear()
        reason = f"{type(exc).__name__}: {exc}"
        if self.state != "down":
            log.warning("redis pub/sub connection lost (%s); reconnecting with backoff", reason)
        else:
            log.debug("redis pub/sub reconnect failed (%s)", reason)
        self.state, self.last_error = "down", reason
        REDIS_HUB_UP.set(0)
        # Subscribers waiting for a confirmation on the dead connection give up now.
        for pending in self._pending.values():
            if not pending.done():
                pending.set_exception(HubUnavailable(reason))
        self._pending.clear()

    async def _disconnect(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = _text(message.get("channel"))
        if kind == "subscribe":
            pending = self._pending.pop(channel, None)
            if pending is not None and not pending.done():
                pending.set_result(None)
            return
        if kind != "message":
            return
        routes = list(self._routes.get(channel, ()))
        text = _text(message["data"])
        if text == HISTORY_LOST_MARK:
            for deliver in routes:
                _call(deliver, LOST)
            return
        local = self._local.get(channel)
        for item in text.split("\n"):
            try:
                seq = seq_of(item)
            except ValueError:
                log.error("dropped a malformed event on %s: %.80r", channel, item)
                continue
            if seq > self._pubsub_head.get(channel, 0):
                self._pubsub_head[channel] = seq
            if local is not None and seq in local:
                local.discard(seq)  # delivered already, at its append
                continue
            event = Event(seq, item)
            for deliver in routes:
                _call(deliver, event)

    def deliver_local(self, channel: str, events: list[Event]) -> None:
        """Hand events appended by this process to its own subscribers of ``channel``."""
        routes = self._routes.get(channel)
        if not routes:
            return
        local = self._local.setdefault(channel, set())
        if len(local) > _MAX_LOCAL:
            # Copies that never came (published while a subscription was being set up):
            # forget them; a subscriber drops a repeated seq itself.
            local.clear()
        head = self._pubsub_head.get(channel, 0)
        for event in events:
            if event.seq <= head:
                continue  # pub/sub was first
            local.add(event.seq)
            for deliver in list(routes):
                _call(deliver, event)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._up.clear()
        self.state = "closed"
        await self._disconnect()
        await self._client.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _call(deliver: Deliver, delivery: Delivery) -> None:
    """A subscriber's failure is its own: it must not stop delivery to the others."""
    try:
        deliver(delivery)
    except Exception:
        log.exception("a subscriber failed to take an event")


class _RedisSubscription:
    def __init__(self, hub: RedisHub, channel: str, deliver: Deliver) -> None:
        self._hub = hub
        self._channel = channel
        self._deliver = deliver

    async def close(self) -> None:
        await self._hub.unsubscribe(self._channel, self._deliver)


class RedisEventLog:
    def __init__(
        self,
        url: str,
        *,
        ttl_s: int = 600,
        max_events: int = 2000,
        hub: RedisHub | None = None,
    ) -> None:
        self.redis = aioredis.Redis.from_url(url, decode_responses=True, **client_options())
        # BLPOP waits up to the clarify timeout (60 s), far past redis-py's default socket
        # timeout (5 s), which would end the wait with a TimeoutError: blocking calls get
        # their own pool without a socket timeout, bounded per call in wait_answer.
        self._blocking = aioredis.Redis.from_url(
            url, decode_responses=True, **{**client_options(), "socket_timeout": None}
        )
        self._ttl_s = ttl_s
        self._max_events = max_events
        self._append = self.redis.register_script(_APPEND)
        self._touch = self.redis.register_script(_TOUCH)
        self._lease = self.redis.register_script(_LEASE)
        self._release = self.redis.register_script(_RELEASE)
        self._hub = hub

    async def create_session(self, session_id: str, user_id: str) -> SessionInfo:
        meta, seq, keys, stream, open_ = _keys(session_id)
        epoch = secrets.token_hex(8)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(meta, seq, keys, stream, open_)
            pipe.hset(meta, mapping={"user_id": user_id, "epoch": epoch})
            pipe.set(seq, 0)
            for key in (meta, seq):
                pipe.expire(key, self._ttl_s)
            await pipe.execute()
        return SessionInfo(session_id, user_id, epoch, 0)

    async def get_session(self, session_id: str) -> SessionInfo | None:
        meta, seq, *_ = _keys(session_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(meta)
            pipe.get(seq)
            fields, head = await pipe.execute()
        if not fields or head is None:
            return None
        return SessionInfo(session_id, fields["user_id"], fields["epoch"], int(head))

    async def touch(self, session_id: str) -> bool:
        return bool(await self._touch(keys=_keys(session_id), args=[self._ttl_s]))

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
        channel = _channel(session_id)
        closed_by = "" if scope is None else done_key(scope)
        args: list[str | int] = [
            self._max_events, self._ttl_s, channel, closed_by, HISTORY_LOST_MARK
        ]
        encoded = [encode_payload(payload) for payload, _ in events]
        for text, (payload, key) in zip(encoded, events, strict=True):
            args += [text, key or "", _open_op(payload)]
        results = await self._append(keys=_keys(session_id), args=args)
        if len(results) == 1 and len(events) > 1:  # the session is gone: nothing was written
            return [int(results[0])] * len(events)
        seqs = [int(result) for result in results]
        if self._hub is not None:
            # This process's subscribers get the events now, not after the pub/sub round trip;
            # the copy pub/sub brings later has a seq they already have, and is dropped.
            self._hub.deliver_local(
                channel, [Event(seq, with_seq(seq, text)) for seq, text in zip(seqs, encoded,
                                                                            strict=True)
                          if seq > 0]
            )
        return seqs

    async def open_chat(self, session_id: str, request_id: str) -> bool:
        meta, _, keys, _, open_ = _keys(session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.exists(meta)
            pipe.hsetnx(keys, accepted_key(request_id), 0)
            pipe.expire(keys, self._ttl_s)
            exists, fresh, _ = await pipe.execute()
        if not exists:
            await self.redis.hdel(keys, accepted_key(request_id))
            return False
        if fresh:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(open_, _CHAT + request_id, "")
                pipe.expire(open_, self._ttl_s)
                await pipe.execute()
        return bool(fresh)

    async def lease(
        self, session_id: str, request_id: str, owner: str, ttl_s: float
    ) -> bool:
        key = "wc:{" + session_id + "}:run:" + request_id
        return bool(await self._lease(keys=[key], args=[owner, int(ttl_s * 1000)]))

    async def release(self, session_id: str, request_id: str, owner: str) -> None:
        await self._release(keys=["wc:{" + session_id + "}:run:" + request_id], args=[owner])

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
        _, seq_key, _, stream, _ = _keys(session_id)
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

    async def open_scans(self, session_id: str) -> dict[str, str]:
        found = await self.redis.hgetall(_keys(session_id)[4])
        fields = {_text(k): _text(v) for k, v in found.items()}
        return {k: v for k, v in fields.items() if not k.startswith(_CHAT)}

    async def open_chats(self, session_id: str) -> set[str]:
        found = await self.redis.hkeys(_keys(session_id)[4])
        return {f[len(_CHAT):] for f in map(_text, found) if f.startswith(_CHAT)}

    async def open_scan(self, session_id: str, request_id: str) -> str | None:
        found = await self.redis.hget(_keys(session_id)[4], request_id)
        return None if found is None else _text(found)

    async def subscribe(self, session_id: str, deliver: Deliver) -> _RedisSubscription:
        if self._hub is None:
            raise RuntimeError("this event log was built without a pub/sub hub")
        # Ride out a blip (the hub reconnecting) rather than refuse the session at once.
        if not await self._hub.wait_up(2.0):
            raise HubUnavailable("the Redis pub/sub connection is down")
        channel = _channel(session_id)
        await self._hub.subscribe(channel, deliver)
        return _RedisSubscription(self._hub, channel, deliver)

    async def close(self) -> None:
        await self._blocking.aclose()
        await self.redis.aclose()
