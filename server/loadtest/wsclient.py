"""One simulated app's WebSocket session: sign-in handshake, events in order, heartbeat, resume.

Built on ``websocket-client``, whose connections are plain blocking sockets: under Locust,
gevent's monkeypatching turns every ``recv``, ``send`` and ``connect`` into a cooperative wait,
so thousands of users share one process without a thread each. (websockets' own synchronous
client would work too, but it runs a background reader thread per connection, which under
gevent is a second greenlet and a lock handoff for every message; its asyncio client cannot
run inside Locust's gevent loop at all.)

Every event is parsed with the protocol's own models (``protocol.messages``): a frame the
models refuse is a malformed event, reported as such, never guessed at. Every wait has a
deadline; nothing here blocks without one. The client keeps what docs/protocol.md section 7
asks of an app (session id, epoch, last seq, gap checks) so that a dropped connection resumes.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from dataclasses import dataclass
from typing import Any

import websocket
from pydantic import BaseModel, ValidationError

from protocol.messages import (
    Error,
    Locale,
    Ping,
    Resume,
    ServerEvent,
    SessionReady,
    SessionStart,
    server_event_adapter,
)

#: Close codes after which reconnecting with ``resume`` is what the protocol asks
#: (docs/protocol.md section 7.5); the others need a fix, a new token or a new session.
RESUMABLE = frozenset({1001, 1006, 1007, 1009, 1011, 1012, 1013})
#: What a connection that ended without a close frame is reported as (RFC 6455).
ABNORMAL = 1006


class Closed(Exception):
    """The server closed the connection (or it was lost: code 1006)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection closed with {code}" + (f" ({reason})" if reason else ""))
        self.code = code
        self.reason = reason


class Malformed(Exception):
    """The server sent something the protocol does not allow."""


class Refused(Exception):
    """The server refused the session (authentication, or a resume of another user's);
    ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class Unreachable(Exception):
    """The WebSocket could not be opened (connection refused, DNS, TLS, HTTP error)."""


@dataclass
class Received:
    event: ServerEvent
    at: float  #: ``time.perf_counter()`` when it was read
    size: int


#: What :meth:`CoachConnection._recv_one` returns for a frame that is no new event: one
#: already seen (a duplicate, skipped), or a WebSocket ping or pong.
_NOTHING = Received.__new__(Received)


class CoachConnection:
    """A WebSocket to ``/api/v1/coach/ws`` carrying one session; reconnects resume it."""

    def __init__(self, ws_url: str, *, timeout_s: float) -> None:
        self.ws_url = ws_url
        self.timeout_s = timeout_s
        self.ws: websocket.WebSocket | None = None
        self.ready: SessionReady | None = None
        self.last_seq = 0
        self.heartbeat_s = 25.0
        self._next_ping = 0.0
        self._ping_sent: dict[str, float] = {}
        self._pings = 0
        #: Messages and bytes, for the report's rates.
        self.sent = 0
        self.received = 0

    # ----------------------------------------------------------------------- opening

    def open(self, token: str, locale: str, *, resume: bool = False) -> list[Received]:
        """Open the socket and the session (a resume of the current one with ``resume``).
        Returns ``session.ready`` first, then the replayed events that were already read.
        Raises :class:`Unreachable`, :class:`Refused`, :class:`Closed`, :class:`Malformed`."""
        self.close()
        try:
            ws = websocket.create_connection(
                self.ws_url,
                timeout=self.timeout_s,
                # No compression: the server has it off, and so does every real app.
                enable_multithread=False,
                skip_utf8_validation=True,
            )
        except (OSError, websocket.WebSocketException) as exc:
            raise Unreachable(f"{self.ws_url}: {exc}") from exc
        self.ws = ws
        self._ping_sent.clear()
        resume_from = None
        if resume and self.ready is not None:
            resume_from = Resume(
                session_id=self.ready.session_id, epoch=self.ready.epoch, last_seq=self.last_seq
            )
        self.send(SessionStart(token=token, locale=Locale(locale), resume=resume_from))
        got = self.recv(self.timeout_s)
        if got is None:
            raise Closed(ABNORMAL, f"no session.ready within {self.timeout_s:g} s")
        event = got.event
        if isinstance(event, Error):
            # The server closes after a refused session.start; read the close, if it comes.
            raise Refused(event.code.value, event.message)
        if not isinstance(event, SessionReady):
            raise Malformed(f"expected session.ready, got {event.type}")
        if not event.resumed or resume_from is None:
            self.last_seq = 0
        self.ready = event
        self.heartbeat_s = event.heartbeat_interval_s
        self._next_ping = time.monotonic() + self.heartbeat_s
        return [got]

    # ----------------------------------------------------------------------- sending

    def send(self, message: BaseModel) -> None:
        self.send_text(message.model_dump_json(exclude_none=True))

    def send_text(self, text: str) -> None:
        self._send(text, binary=False)

    def send_binary(self, data: bytes) -> None:
        self._send(data, binary=True)

    def _send(self, data: str | bytes, *, binary: bool) -> None:
        if self.ws is None:
            raise Closed(ABNORMAL, "not connected")
        try:
            if binary:
                self.ws.send_binary(data)  # type: ignore[arg-type]
            else:
                self.ws.send(data)
        except (OSError, websocket.WebSocketException) as exc:
            self._drop()
            raise Closed(ABNORMAL, str(exc)) from exc
        self.sent += 1

    def ping_due(self) -> bool:
        return time.monotonic() >= self._next_ping

    def send_ping(self) -> str:
        """The protocol's heartbeat (section 9); returns its request id."""
        self._pings += 1
        rid = f"hb-{self._pings}"
        self._ping_sent[rid] = time.perf_counter()
        self._next_ping = time.monotonic() + self.heartbeat_s
        self.send(Ping(request_id=rid))
        return rid

    def pong_sent_at(self, request_id: str | None) -> float | None:
        return self._ping_sent.pop(request_id, None) if request_id else None

    def pong_overdue(self) -> bool:
        """Whether a ping has waited too long for its pong: two heartbeat intervals (section
        9), and no less than the network timeout (a server asking for a ping every second is
        not dead because one pong took two under load)."""
        oldest = min(self._ping_sent.values(), default=None)
        limit = max(2 * self.heartbeat_s, self.timeout_s)
        return oldest is not None and time.perf_counter() - oldest > limit

    def until_ping(self) -> float:
        return max(0.0, self._next_ping - time.monotonic())

    # ----------------------------------------------------------------------- receiving

    def recv(self, timeout_s: float) -> Received | None:
        """The next event within ``timeout_s`` (None when none came). Raises :class:`Closed`
        when the connection ends and :class:`Malformed` for what the protocol forbids,
        including a gap or a step back in ``seq`` (section 7.4)."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self._recv_one(max(deadline - time.monotonic(), 0.001))
            if got is not _NOTHING:
                return got
            if time.monotonic() >= deadline:
                return None

    def _recv_one(self, timeout_s: float) -> Received | None:
        ws = self.ws
        if ws is None:
            raise Closed(ABNORMAL, "not connected")
        ws.settimeout(timeout_s)
        try:
            # Control frames come back to us too (websocket-client answers pings itself):
            # otherwise the server's pings, arriving within every timeout, would keep this
            # call reading past any deadline of ours.
            opcode, data = ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return None
        except (OSError, websocket.WebSocketException) as exc:
            if isinstance(exc, socket.timeout):
                return None
            self._drop()
            raise Closed(ABNORMAL, str(exc) or type(exc).__name__) from exc
        at = time.perf_counter()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            reason = data[2:].decode("utf-8", "replace")
            self._drop()
            raise Closed(code, reason)
        if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
            return _NOTHING
        if opcode != websocket.ABNF.OPCODE_TEXT:
            raise Malformed(f"the server sent a non-text frame (opcode {opcode})")
        self.received += 1
        try:
            event = server_event_adapter.validate_json(data)
        except ValidationError as exc:
            raise Malformed(f"an event the protocol does not allow: {_short(exc, data)}") from exc
        seq = event.seq
        if seq > 0:
            if seq <= self.last_seq:
                return _NOTHING  # section 7.4: a duplicate is ignored
            if seq != self.last_seq + 1:
                raise Malformed(f"seq jumped from {self.last_seq} to {seq} (events missed)")
            self.last_seq = seq
        return Received(event, at, len(data))

    # ----------------------------------------------------------------------- closing

    def close(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                ws.close(status=1000, timeout=1)

    def _drop(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                untyped: Any = ws  # websocket-client leaves shutdown() unannotated
                untyped.shutdown()


def _short(exc: ValidationError, data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        kind = json.loads(text).get("type", "?")
    except (ValueError, AttributeError):
        kind = "not JSON"
    errors = exc.errors()
    where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
    why = errors[0]["msg"] if errors else str(exc)
    return f"type {kind!r}, {where}: {why}; frame {text[:120]!r}"
