"""The frames of the session machine's fuzz test, over a real WebSocket to the embedded app.

The same hypothesis strategies (tests/support/frames.py) feed a live connection: before
``session.start`` and on an open session. After every frame the session must live on (a
``ping`` gets its ``pong``, past whatever the frame caused) or be closed with a close code of
docs/protocol.md; every event that comes back must be a valid server event with a documented
error code and no invalid ``request_id``; and the server must log no traceback and no error.

Fewer examples than the machine's test: each is a round trip through the whole stack. A
connection is kept across examples while it lives, as a client would keep it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from protocol.messages import REQUEST_ID_PATTERN, server_event_adapter
from tests.conftest import Stack
from tests.support.frames import Frame, documented_close_codes, documented_error_codes, frames

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.parametrize("stack", ["embedded"], indirect=True),
]

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ERROR_CODES = documented_error_codes()
CLOSE_CODES = documented_close_codes()
REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
#: Codes of frames refused for what they are.
FRAME_ERRORS = {"invalid_json", "invalid_message", "unknown_type", "message_too_large",
                "unsupported_version", "invalid_frame"}


class ServerLog(logging.Handler):
    """Records of the server's loggers (it runs in this process, on a thread) that carry a
    traceback or are errors."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.bad: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("websockets.client"):
            return  # this test's own client
        if record.exc_info or record.levelno >= logging.ERROR:
            self.bad.append(record)


@pytest.fixture
def server_log() -> Iterator[ServerLog]:
    handler = ServerLog()
    # uvicorn's own loggers do not propagate to the root logger.
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def guest_token(stack: Stack) -> str:
    response = httpx.post(stack.base_url + "/api/v1/auth/guest")
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


class Peer:
    """A client that keeps its connection across examples while it lives."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.token = guest_token(stack)
        self.ws: ClientConnection | None = None
        self._open = contextlib.ExitStack()
        self.ids = itertools.count()

    def connect(self) -> ClientConnection:
        return connect(self.stack.ws_url, max_size=8 * 1024 * 1024, open_timeout=10)

    def session(self) -> ClientConnection:
        if self.ws is None:
            self.ws = ws = self._open.enter_context(self.connect())
            ws.send(json.dumps({"type": "session.start", "token": self.token}))
            assert receive(ws)["type"] == "session.ready"
        return self.ws

    def close(self) -> None:
        self.ws = None
        self._open.close()


def receive(ws: ClientConnection) -> dict[str, Any]:
    """The next event, checked against the protocol's event schemas."""
    raw = ws.recv(timeout=10)
    assert isinstance(raw, str), raw
    server_event_adapter.validate_json(raw)
    event: dict[str, Any] = json.loads(raw)
    if event["type"] == "error":
        assert event["code"] in ERROR_CODES, event
        request_id = event["request_id"]
        assert request_id is None or REQUEST_ID.fullmatch(request_id), event
    return event


def utf8(frame: Frame) -> bool:
    """Whether ``frame`` can go on the wire as it is: binary, or text that has a UTF-8 form.
    A text with a lone surrogate has none; its bytes as a lenient encoder writes them are the
    subject of test_a_text_frame_that_is_not_utf8."""
    try:
        (frame.text or "").encode()
    except UnicodeEncodeError:
        return False
    return True


#: The frames of the machine's fuzz test that a WebSocket can carry.
WIRE_FRAMES = st.lists(frames().filter(utf8), min_size=1, max_size=3)


def send(ws: ClientConnection, frame: Frame) -> None:
    ws.send(frame.binary if frame.text is None else frame.text)


def closed_with_a_documented_code(closed: ConnectionClosed) -> None:
    assert closed.rcvd is not None, "closed without a close frame"
    assert closed.rcvd.code in CLOSE_CODES, closed.rcvd


def answered(ws: ClientConnection, frame: Frame, ping_id: str) -> list[dict[str, Any]]:
    """Send ``frame`` and then a ping; the events up to its pong (ConnectionClosed if the
    server closed instead)."""
    send(ws, frame)
    ws.send(json.dumps({"type": "ping", "request_id": ping_id}))
    events = []
    while True:
        event = receive(ws)
        if event["type"] == "pong" and event["request_id"] == ping_id:
            return events
        events.append(event)


def test_hostile_frames_on_an_open_session(stack: Stack, server_log: ServerLog) -> None:
    peer = Peer(stack)

    @settings(FUZZ, max_examples=100)
    @given(WIRE_FRAMES)
    # Always tried, whatever the derandomized examples are (they depend on the checkout's path):
    # a binary frame on an open session with no live mode is refused with invalid_frame.
    @example([Frame(None, False, "binary", binary=b"")])
    @example([Frame(None, False, "binary", binary=b"\x00" * 20)])
    def session_lives_on(sent: list[Frame]) -> None:
        ws = peer.session()
        for frame in sent:
            event(frame.how)  # (--hypothesis-show-statistics)
            try:
                events = answered(ws, frame, f"fuzz-{next(peer.ids)}")
            except ConnectionClosed as closed:
                peer.close()
                closed_with_a_documented_code(closed)
                return
            if frame.valid is False:
                assert any(e["type"] == "error" and e["code"] in FRAME_ERRORS for e in events)

    try:
        session_lives_on()
    finally:
        peer.close()
    assert server_log.bad == []


def test_hostile_frames_before_session_start(stack: Stack, server_log: ServerLog) -> None:
    peer = Peer(stack)

    @FUZZ
    @given(WIRE_FRAMES)
    def handshake_lives_on(sent: list[Frame]) -> None:
        with peer.connect() as ws:
            try:
                for frame in sent:
                    event(frame.how)
                    send(ws, frame)
                    reply = receive(ws)
                    # Before the session every answer is a connection-level error (no frame
                    # carries a good token).
                    assert reply["seq"] == 0 and reply["type"] == "error", reply
                    if frame.valid is False:
                        assert reply["code"] in FRAME_ERRORS, reply
                ws.send(json.dumps({"type": "session.start", "token": peer.token}))
                reply = receive(ws)
            except ConnectionClosed as closed:
                closed_with_a_documented_code(closed)
                return
            if reply["type"] == "error":
                # A session.start among the frames is being verified, or was accepted.
                assert reply["code"] == "already_authenticated", reply
            else:
                assert reply["type"] == "session.ready", reply

    handshake_lives_on()
    assert server_log.bad == []


@pytest.mark.parametrize("opened", [False, True], ids=["before_start", "open"])
def test_a_text_frame_that_is_not_utf8(stack: Stack, server_log: ServerLog, opened: bool) -> None:
    """Found by the fuzz tests above (a lone surrogate, as a lenient encoder writes it). The
    close is the WebSocket layer's 1007, as docs/protocol.md says; uvicorn logged a traceback
    for each such frame, which any client could cause at will: now one line at WARNING."""
    peer = Peer(stack)
    try:
        ws = peer.session() if opened else peer._open.enter_context(peer.connect())
        ws.send(b'{"type": "ping", "request_id": "\xed\xa0\x80"}', text=True)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                receive(ws)  # (rate_limits.updated follows session.ready)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
        closed_with_a_documented_code(closed.value)
    finally:
        peer.close()
    assert server_log.bad == []
