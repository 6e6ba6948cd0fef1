"""A protocol client written from docs/protocol.md alone, as an app developer would.

It keeps the session id, epoch and last seq, so it can resume after a dropped connection, and
it checks on every event that seq grows by exactly one (connection-level events have seq 0).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


class ProtocolViolation(AssertionError):
    pass


@dataclass
class CoachClient:
    url: str
    token: str
    locale: str = "ko"
    session_id: str | None = None
    epoch: str | None = None
    last_seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    ws: ClientConnection | None = None
    ready: dict[str, Any] | None = None
    budgets: dict[str, Any] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def connect(self, *, resume: bool = False) -> dict[str, Any]:
        self.ws = await websockets.connect(self.url, max_size=8 * 1024 * 1024)
        start: dict[str, Any] = {"type": "session.start", "v": 1, "token": self.token,
                                 "locale": self.locale}
        if resume and self.session_id is not None:
            start["resume"] = {"session_id": self.session_id, "epoch": self.epoch,
                               "last_seq": self.last_seq}
        await self.send(start)
        ready = await self.recv_raw()
        if ready["type"] != "session.ready":
            return ready
        if not ready["resumed"]:
            # A new epoch: whatever we had is history; seq starts again.
            self.last_seq = 0
        self.session_id, self.epoch = ready["session_id"], ready["epoch"]
        self.ready = ready
        return ready

    def next_id(self) -> str:
        return f"r{next(self._ids)}"

    async def send(self, message: dict[str, Any] | str) -> None:
        assert self.ws is not None
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def recv_raw(self, timeout: float = 10) -> dict[str, Any]:
        assert self.ws is not None
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        event: dict[str, Any] = json.loads(raw)
        return event

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        event = await self.recv_raw(timeout)
        while event["type"] == "rate_limits.updated":
            # Informational: keep the latest budgets for the UI, and read on.
            self.budgets.update({k: v for k, v in event.items() if k in ("scans", "chats") and v})
            event = await self.recv_raw(timeout)
        seq = event["seq"]
        if seq != 0:
            if seq != self.last_seq + 1:
                raise ProtocolViolation(f"seq jumped from {self.last_seq} to {seq}: {event}")
            self.last_seq = seq
        self.events.append(event)
        return event

    async def recv_until(self, predicate: Any, timeout: float = 15) -> list[dict[str, Any]]:
        got = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            event = await self.recv(max(0.01, remaining))
            got.append(event)
            if predicate(event):
                return got

    async def scan(
        self,
        image: bytes = b"JPEGDATA",
        *,
        request_id: str | None = None,
        location: dict[str, float] | None = None,
        upload_key: str | None = None,
    ) -> str:
        request_id = request_id or self.next_id()
        if upload_key is not None:
            ref: dict[str, Any] = {"kind": "upload", "key": upload_key}
        else:
            ref = {"kind": "inline", "content_type": "image/jpeg",
                   "data": base64.b64encode(image).decode()}
        message: dict[str, Any] = {"type": "scan.start", "request_id": request_id, "image": ref}
        if location is not None:
            message["location"] = location
        await self.send(message)
        return request_id

    async def run_scan(self, image: bytes = b"JPEGDATA", **kwargs: Any) -> list[dict[str, Any]]:
        request_id = await self.scan(image, **kwargs)
        return await self.recv_until(
            lambda e: e["type"] in ("scan.done", "error") and e.get("request_id") == request_id
        )

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None
