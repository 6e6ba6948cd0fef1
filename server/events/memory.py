"""In-process event log for embedded mode: same contract as the Redis log, no I/O."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from server.events.base import (
    AppendStatus,
    Deliver,
    Event,
    SessionInfo,
    accepted_key,
    done_key,
    encode_payload,
    with_seq,
)


@dataclass(slots=True)
class _SessionLog:
    user_id: str
    epoch: str
    maxlen: int
    head: int = 0
    #: Made at the first event: an idle session's empty deque would cost 760 bytes.
    events: deque[tuple[int, str]] | None = None
    keys: dict[str, int] = field(default_factory=dict)
    open: dict[str, str] = field(default_factory=dict)
    chats: set[str] = field(default_factory=set)
    subscribers: list[Deliver] = field(default_factory=list)
    touched: float = field(default_factory=time.monotonic)


class _MemorySubscription:
    def __init__(self, log: _SessionLog, deliver: Deliver) -> None:
        self._log = log
        self._deliver = deliver

    async def close(self) -> None:
        if self._deliver in self._log.subscribers:
            self._log.subscribers.remove(self._deliver)


class MemoryEventLog:
    def __init__(self, *, ttl_s: float = 600, max_events: int = 2000) -> None:
        self._ttl_s = ttl_s
        self._max_events = max_events
        self._sessions: dict[str, _SessionLog] = {}
        self._answers: dict[tuple[str, str], asyncio.Queue[str]] = {}
        self._leases: dict[tuple[str, str], tuple[str, float]] = {}

    def _live(self, session_id: str) -> _SessionLog | None:
        log = self._sessions.get(session_id)
        if log is None:
            return None
        if not log.subscribers and time.monotonic() - log.touched > self._ttl_s:
            del self._sessions[session_id]
            return None
        return log

    def _expire_idle(self) -> None:
        now = time.monotonic()
        for sid in [
            s for s, log in self._sessions.items()
            if not log.subscribers and now - log.touched > self._ttl_s
        ]:
            del self._sessions[sid]

    async def create_session(self, session_id: str, user_id: str) -> SessionInfo:
        self._expire_idle()
        log = _SessionLog(user_id=user_id, epoch=secrets.token_hex(8), maxlen=self._max_events)
        self._sessions[session_id] = log
        return SessionInfo(session_id, user_id, log.epoch, 0)

    async def get_session(self, session_id: str) -> SessionInfo | None:
        log = self._live(session_id)
        return None if log is None else SessionInfo(session_id, log.user_id, log.epoch, log.head)

    async def touch(self, session_id: str) -> bool:
        log = self._live(session_id)
        if log is None:
            return False
        log.touched = time.monotonic()
        return True

    async def open_scans(self, session_id: str) -> dict[str, str]:
        log = self._live(session_id)
        return {} if log is None else dict(log.open)

    async def open_scan(self, session_id: str, request_id: str) -> str | None:
        log = self._live(session_id)
        return None if log is None else log.open.get(request_id)

    async def append(
        self,
        session_id: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        scope: str | None = None,
    ) -> int:
        log = self._live(session_id)
        if log is None:
            return AppendStatus.SESSION_GONE
        if scope is not None and done_key(scope) in log.keys:
            return AppendStatus.SCAN_CLOSED
        if key is not None and key in log.keys:
            return AppendStatus.DUPLICATE
        log.head += 1
        seq = log.head
        if key is not None:
            log.keys[key] = seq
        kind, request_id = payload.get("type"), payload.get("request_id")
        if kind == "scan.accepted" and request_id and payload.get("scan_id"):
            log.open[request_id] = payload["scan_id"]
        elif kind == "scan.done" and request_id:
            log.open.pop(request_id, None)
        elif kind == "chat.done" and request_id:
            log.chats.discard(request_id)
        event = with_seq(seq, encode_payload(payload))
        if log.events is None:
            log.events = deque()
        log.events.append((seq, event))
        if len(log.events) > log.maxlen:
            log.events.popleft()
        log.touched = time.monotonic()
        delivery = Event(seq, event)
        for deliver in list(log.subscribers):
            deliver(delivery)
        return seq

    async def append_many(
        self,
        session_id: str,
        events: Sequence[tuple[dict[str, Any], str | None]],
        *,
        scope: str | None = None,
    ) -> list[int]:
        return [
            await self.append(session_id, payload, key=key, scope=scope)
            for payload, key in events
        ]

    async def open_chat(self, session_id: str, request_id: str) -> bool:
        log = self._live(session_id)
        key = accepted_key(request_id)
        if log is None or key in log.keys:
            return False
        log.keys[key] = 0
        log.chats.add(request_id)
        return True

    async def open_chats(self, session_id: str) -> set[str]:
        log = self._live(session_id)
        return set() if log is None else set(log.chats)

    async def lease(
        self, session_id: str, request_id: str, owner: str, ttl_s: float
    ) -> bool:
        now = time.monotonic()
        held = self._leases.get((session_id, request_id))
        if held is not None and held[0] != owner and held[1] > now:
            return False
        self._leases[(session_id, request_id)] = (owner, now + ttl_s)
        return True

    async def release(self, session_id: str, request_id: str, owner: str) -> None:
        held = self._leases.get((session_id, request_id))
        if held is not None and held[0] == owner:
            del self._leases[(session_id, request_id)]

    def _answers_for(self, session_id: str, request_id: str) -> asyncio.Queue[str]:
        return self._answers.setdefault((session_id, request_id), asyncio.Queue(maxsize=8))

    async def put_answer(self, session_id: str, request_id: str, answer: str) -> None:
        queue = self._answers_for(session_id, request_id)
        if queue.full():
            queue.get_nowait()
        queue.put_nowait(answer)

    async def wait_answer(self, session_id: str, request_id: str, timeout: float) -> str | None:
        queue = self._answers_for(session_id, request_id)
        try:
            return await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            return None
        finally:
            if queue.empty():
                self._answers.pop((session_id, request_id), None)

    async def read_since(self, session_id: str, after_seq: int) -> list[tuple[int, str]] | None:
        log = self._live(session_id)
        if log is None or after_seq > log.head:
            return None
        if after_seq == log.head:
            return []
        missing = [(s, e) for s, e in log.events or () if s > after_seq]
        if not missing or missing[0][0] != after_seq + 1:
            return None
        return missing

    async def subscribe(self, session_id: str, deliver: Deliver) -> _MemorySubscription:
        log = self._live(session_id)
        if log is None:
            raise LookupError(f"no session {session_id}")
        log.subscribers.append(deliver)
        return _MemorySubscription(log, deliver)

    async def close(self) -> None:
        self._sessions.clear()
