"""Load for the fault tests: real WebSocket clients that scan in a loop and behave as
docs/protocol.md asks a mobile client to (sections 7 and 9).

Each :class:`LoadSession` keeps one session alive across connections: whenever the connection
closes it reconnects and resumes with ``{session_id, epoch, last_seq}``, honouring the close
code (1012 restart, 1013 too slow, 1011 history lost, network errors with backoff), resends a
``scan.start`` that got neither ``scan.accepted`` nor ``error`` (same request id), and records
every event it receives with the connection and epoch it came on. It does not judge what it
sees beyond bookkeeping; :mod:`tests.faults.checks` does that afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

#: Close codes whose meaning docs/protocol.md documents for the server to send.
DOCUMENTED_CLOSES = {1001, 1011, 1012, 1013, 4001, 4003, 4008}


@dataclass
class Received:
    """One event as the client got it."""

    at: float  # time.time() on arrival
    conn: int  # connection number within the session (1, 2, ...)
    session_id: str
    epoch: str
    event: dict[str, Any]


@dataclass
class ScanRecord:
    request_id: str
    image: bytes
    sent_at: float
    session_id: str | None = None  # the session it was accepted in
    epoch: str | None = None
    accepted_at: float | None = None
    done_at: float | None = None
    status: str | None = None
    error: dict[str, Any] | None = None
    refused: str | None = None  # error code of a refusal before acceptance
    lost: str | None = None  # why the client was told it is gone (new epoch / 1011)
    clarified: bool = False


@dataclass
class Close:
    at: float
    conn: int
    code: int | None
    reason: str


@dataclass
class LoadSession:
    """One client session that survives its connections."""

    url: str
    token: str
    name: str
    image: bytes = b"JPEGDATA"
    #: Scans this client keeps running at once.
    concurrency: int = 1
    #: Clarify answers: ``None`` (do not answer) or the delay before answering.
    clarify_delay: float | None = 0.0
    #: Which of the offered choices the client picks.
    clarify_choice: int = 0
    #: Sent with every scan.start when set ({"lat": ..., "lon": ...}).
    location: dict[str, float] | None = None
    locale: str = "en"
    session_id: str | None = None
    epoch: str | None = None
    last_seq: int = 0
    conn: int = 0
    received: list[Received] = field(default_factory=list)
    readies: list[tuple[float, dict[str, Any], dict[str, Any] | None]] = field(
        default_factory=list)
    closes: list[Close] = field(default_factory=list)
    connect_errors: list[tuple[float, str]] = field(default_factory=list)
    scans: dict[str, ScanRecord] = field(default_factory=dict)
    #: Things the client itself saw go wrong (gaps, duplicates, unparseable frames).
    anomalies: list[str] = field(default_factory=list)
    #: (epoch, start time, end time): when a new epoch replaced one the client still had.
    epochs_lost: list[tuple[str, float, str]] = field(default_factory=list)
    sending: bool = True
    #: No new scan before this time (a client backs off after a failed scan, section 8).
    _hold_until: float = 0.0
    ws: ClientConnection | None = None
    _counter: int = 0
    _pending: dict[str, ScanRecord] = field(default_factory=dict)  # sent, not yet answered
    _connected: asyncio.Event = field(default_factory=asyncio.Event)

    # ---------------------------------------------------------------- bookkeeping

    def in_flight(self) -> list[ScanRecord]:
        """Accepted scans without scan.done that were not declared lost."""
        return [s for s in self.scans.values()
                if s.accepted_at is not None and s.status is None and s.lost is None]

    def unsettled(self) -> list[ScanRecord]:
        """Sent scans with no outcome at all yet (in flight, or not yet answered)."""
        return [s for s in self.scans.values()
                if s.status is None and s.lost is None and s.refused is None]

    def events_of(self, request_id: str) -> list[dict[str, Any]]:
        return [r.event for r in self.received if r.event.get("request_id") == request_id]

    def _lose_epoch(self, why: str) -> None:
        """The client was told its epoch is gone: its unfinished scans are lost (7.3)."""
        if self.epoch is not None:
            self.epochs_lost.append((self.epoch, time.time(), why))
        for record in self.scans.values():
            # Scans sent but not yet accepted stay pending: they are sent again (7.2).
            if record.accepted_at is not None and record.status is None and record.lost is None:
                record.lost = why

    # ---------------------------------------------------------------- connection

    async def connect(self, timeout: float = 10) -> dict[str, Any]:
        """Open a connection, resuming the session if there is one. Returns session.ready."""
        self._connected.clear()
        ws = await asyncio.wait_for(
            websockets.connect(self.url, max_size=8 * 1024 * 1024, open_timeout=timeout,
                               ping_interval=None, close_timeout=2),
            timeout + 1,
        )
        self.ws = ws
        self.conn += 1
        start: dict[str, Any] = {"type": "session.start", "v": 1, "token": self.token,
                                 "locale": self.locale}
        resume = None
        if self.session_id is not None:
            resume = {"session_id": self.session_id, "epoch": self.epoch,
                      "last_seq": self.last_seq}
            start["resume"] = resume
        await ws.send(json.dumps(start))
        raw = await asyncio.wait_for(ws.recv(), timeout)
        ready: dict[str, Any] = json.loads(raw)
        if ready.get("type") != "session.ready":
            raise HandshakeRefused(ready)
        self.readies.append((time.time(), ready, resume))
        if not ready["resumed"]:
            if resume is not None:
                self._lose_epoch("resumed: false")
            self.last_seq = 0
        self.session_id, self.epoch = ready["session_id"], ready["epoch"]
        self._connected.set()
        return ready

    async def run(self, stop: asyncio.Event) -> None:
        """Scan in a loop until ``stop``; then wait for the running scans to end (the caller
        bounds that with a timeout) and close."""
        backoff = 0.2
        while True:
            if stop.is_set() and not self.unsettled():
                break
            try:
                ready = await self.connect()
                backoff = 0.2
                await self._session(stop, replay_until=ready["last_seq"])
                break  # _session returns only when done
            except ConnectionClosed as exc:
                await self._closed(exc)
                delay = self._delay_after(exc)
                await asyncio.sleep(delay)
            except HandshakeRefused as exc:
                self.connect_errors.append((time.time(), f"refused: {exc.event}"))
                await self._drop()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self.connect_errors.append((time.time(), f"{type(exc).__name__}: {exc}"))
                await self._drop()
                await asyncio.sleep(backoff + random.random() * 0.2)
                backoff = min(backoff * 2, 2.0)
        await self._drop()

    async def _drop(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 3)
            self.ws = None

    async def _closed(self, exc: ConnectionClosed) -> None:
        rcvd = exc.rcvd
        code = rcvd.code if rcvd is not None else None
        reason = rcvd.reason if rcvd is not None else ""
        self.closes.append(Close(time.time(), self.conn, code, reason))
        if code == 1011:
            # History lost: the next session.ready will be a new epoch (7.3); the scans of
            # this epoch are gone whatever it says.
            self._lose_epoch("1011")
        await self._drop()

    @staticmethod
    def _delay_after(exc: ConnectionClosed) -> float:
        code = exc.rcvd.code if exc.rcvd is not None else None
        if code == 1012:
            return 0.2 + random.random() * 0.8  # docs: 1-5 s; shortened for the tests
        if code == 1013:
            return 0.5
        if code == 1011:
            return 1.0
        return 0.2 + random.random() * 0.3

    async def _resend_pending(self) -> None:
        # 7.2 step 4: a scan.start with neither scan.accepted nor error may never have
        # arrived: send it again with the same request id.
        for record in list(self._pending.values()):
            await self._send_scan(record)

    # ---------------------------------------------------------------- the loop

    def next_request_id(self) -> str:
        self._counter += 1
        return f"{self.name}-r{self._counter}"

    async def _send_scan(self, record: ScanRecord) -> None:
        assert self.ws is not None
        self._pending[record.request_id] = record
        message: dict[str, Any] = {"type": "scan.start", "request_id": record.request_id,
                   "image": {"kind": "inline", "content_type": "image/jpeg",
                             "data": base64.b64encode(record.image).decode()}}
        if self.location is not None:
            message["location"] = self.location
        await self.ws.send(json.dumps(message))

    async def start_scan(self, image: bytes | None = None) -> ScanRecord:
        record = ScanRecord(self.next_request_id(), image or self.image, time.time())
        self.scans[record.request_id] = record
        await self._send_scan(record)
        return record

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(message))

    async def _session(self, stop: asyncio.Event, replay_until: int = 0) -> None:
        assert self.ws is not None
        replayed = False
        while True:
            if not replayed and self.last_seq >= replay_until:
                # 7.2 step 4: once the replay is done, settle unfinished requests.
                replayed = True
                await self._resend_pending()
            if stop.is_set():
                self.sending = False
                if not self.unsettled():
                    return
            if (replayed and self.sending and time.time() >= self._hold_until
                    and len(self._pending) + len(self.in_flight()) < self.concurrency):
                await self.start_scan()
            try:
                raw = await asyncio.wait_for(self.ws.recv(), 0.5)
            except TimeoutError:
                continue
            self._on_event(raw)

    def _on_event(self, raw: str | bytes) -> None:
        try:
            event: dict[str, Any] = json.loads(raw)
        except ValueError:
            self.anomalies.append(f"unparseable frame: {raw[:200]!r}")
            return
        assert self.session_id is not None and self.epoch is not None
        now = time.time()
        self.received.append(Received(now, self.conn, self.session_id, self.epoch, event))
        seq = event.get("seq", 0)
        if seq:
            if seq != self.last_seq + 1:
                kind = "duplicate" if seq <= self.last_seq else "gap"
                self.anomalies.append(
                    f"{kind}: seq {seq} after {self.last_seq} (epoch {self.epoch}, "
                    f"conn {self.conn}): {event.get('type')} {event.get('request_id')}")
            if seq > self.last_seq:
                self.last_seq = seq
        request_id = event.get("request_id")
        record = self.scans.get(request_id) if isinstance(request_id, str) else None
        if record is None:
            return
        event_type = event.get("type")
        if event_type == "scan.accepted":
            self._pending.pop(record.request_id, None)
            record.accepted_at = now
            record.session_id, record.epoch = self.session_id, self.epoch
        elif event_type == "error" and record.accepted_at is None:
            self._pending.pop(record.request_id, None)
            code = event.get("code")
            if code == "duplicate_request":
                # 7.2: after a resend, the scan is running: wait for its events. It was
                # accepted on an earlier connection; its scan.accepted is in the replay.
                return
            if code in ("too_many_scans", "rate_limited"):
                # Retryable refusals: resend later with a new request id.
                record.refused = code
                self._hold_until = now + 0.5
                return
            record.refused = code or "error"
        elif event_type == "scan.clarify":
            record.clarified = True
            if self.clarify_delay is not None and self.ws is not None:
                choices = event["choices"]
                choice = choices[min(self.clarify_choice, len(choices) - 1)]["label"]
                asyncio.get_running_loop().create_task(
                    self._answer(record.request_id, choice, self.clarify_delay))
        elif event_type == "scan.done":
            if record.status is not None:
                return  # a second scan.done: the checker reports it from `received`
            record.done_at = now
            record.status = event.get("status")
            record.error = event.get("error")
            if record.status == "failed":
                # "Retry after a few seconds" (section 8): shortened for the tests.
                self._hold_until = now + 1.0

    async def _answer(self, request_id: str, choice: str, delay: float) -> None:
        await asyncio.sleep(delay)
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps({"type": "scan.clarify.answer",
                                          "request_id": request_id, "choice": choice}))


class HandshakeRefused(Exception):
    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__(str(event))
        self.event = event


async def guest_tokens(base_url: str, count: int) -> list[str]:
    """``count`` guest tokens (each a new user) from the server's guest endpoint."""
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        tokens = []
        for _ in range(count):
            response = await http.post("/api/v1/auth/guest")
            response.raise_for_status()
            tokens.append(response.json()["access_token"])
        return tokens


@dataclass
class Load:
    """N sessions scanning together until stopped."""

    sessions: list[LoadSession]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, base_url: str, ws_url: str, count: int, **kwargs: Any) -> Load:
        tokens = await guest_tokens(base_url, count)
        load = cls([LoadSession(ws_url, token, f"s{i}", **kwargs)
                    for i, token in enumerate(tokens)])
        for session in load.sessions:
            load.tasks.append(asyncio.create_task(session.run(load.stop), name=session.name))
        return load

    async def wait_connected(self, timeout: float = 60) -> None:
        await asyncio.wait_for(
            asyncio.gather(*(s._connected.wait() for s in self.sessions)), timeout)

    def completed_since(self, since: float) -> int:
        return sum(1 for s in self.sessions for r in s.scans.values()
                   if r.status == "completed" and r.done_at is not None and r.done_at >= since)

    async def wait_completions(self, since: float, count: int, timeout: float) -> float | None:
        """Seconds from ``since`` until ``count`` scans started after it completed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = sorted(r.done_at for s in self.sessions for r in s.scans.values()
                          if r.status == "completed" and r.done_at is not None
                          and r.sent_at >= since)
            if len(done) >= count:
                return done[count - 1] - since
            await asyncio.sleep(0.1)
        return None

    async def finish(self, timeout: float = 30) -> list[str]:
        """Stop sending, let running scans end (bounded), close. Returns sessions that did
        not settle in time."""
        self.stop.set()
        _, pending = await asyncio.wait(self.tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for session in self.sessions:
            await session._drop()
        return [t.get_name() for t in pending]
