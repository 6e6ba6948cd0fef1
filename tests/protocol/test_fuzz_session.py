"""Property-based fuzzing of the session machine with every client message, valid and hostile.

The frames come from tests/support/frames.py (the live-socket fuzz test sends the same ones).
Whatever a client sends, in whatever state, and whatever the I/O layer answers in between:

* the machine never raises;
* every action is one of the documented actions; every event is an ``error`` or a ``pong``
  that serialises to a valid server event; every error code and close code is in the tables
  of docs/protocol.md;
* a frame refused for what it is gets exactly one ``error`` with a code that counts towards
  the 1008 close (and that close comes exactly at the tenth in a row);
* an error never echoes an invalid ``request_id`` (it may echo only a valid one, of the frame);
* an error's message quotes a bounded excerpt of the frame, however large the frame;
* the concurrent scans and questions never exceed their caps, and are exactly those a
  reference model of docs/protocol.md expects;
* the closed state is absorbing: nothing is read, nothing is sent, nothing reopens it.

Hypothesis runs derandomised and without its example database, so CI sees the same examples
every run; the whole module takes a few seconds.
"""

from __future__ import annotations

import json
import re
import typing
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from protocol.live import encode_frame
from protocol.messages import (
    MAX_LIVE_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_START_MESSAGE_BYTES,
    REQUEST_ID_PATTERN,
    DropReason,
    Error,
    ErrorCode,
    Pong,
    client_message_adapter,
    server_event_adapter,
)
from protocol.session import (
    Action,
    AnswerClarify,
    Authenticate,
    CancelScan,
    Close,
    CloseCode,
    DropFrame,
    LiveFrame,
    RefreshAuth,
    SendEvent,
    SessionMachine,
    StartChat,
    StartLive,
    StartScan,
    State,
    StopLive,
)
from tests.support.frames import (
    VALID,
    Frame,
    documented_close_codes,
    documented_error_codes,
    frames,
)

FUZZ = settings(
    max_examples=800,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STATEFUL = settings(FUZZ, max_examples=200, stateful_step_count=50)

ACTIONS = typing.get_args(Action)
FRAME_ERRORS = frozenset(
    {
        ErrorCode.INVALID_JSON,
        ErrorCode.INVALID_MESSAGE,
        ErrorCode.UNKNOWN_TYPE,
        ErrorCode.MESSAGE_TOO_LARGE,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.INVALID_FRAME,
    }
)
ERROR_CODES = documented_error_codes()
CLOSE_CODES = documented_close_codes()
REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
#: Longest error message: the longest the machine writes itself, with room for five field
#: paths, but nowhere near the size of a frame.
MAX_ERROR_MESSAGE = 2_048
SCAN_CAP = 3
CHAT_CAP = 2
#: Request ids drawn from a small pool collide, so duplicates and the caps are reached.
POOL = st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"])
#: Whether a close the I/O layer may report at any time comes now: seldom, so that most
#: runs get far into an open session before it.
CLOSE_NOW = st.integers(0, 9).map(lambda n: n == 0)
REQUEST_FOR = {
    "scan.start": StartScan,
    "scan.cancel": CancelScan,
    "scan.clarify.answer": AnswerClarify,
    "chat.message": StartChat,
    "auth.refresh": RefreshAuth,
}


def new_machine() -> SessionMachine:
    return SessionMachine(max_concurrent_scans=SCAN_CAP, max_concurrent_chats=CHAT_CAP)


def parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def check_event(send: SendEvent, *, opened: bool, frame: str | None) -> None:
    """What holds for every event the machine asks to send in answer to a client frame."""
    answer = send.event
    assert isinstance(answer, Error | Pong), answer
    # The event is what a client gets: it must serialise, as JSON a client can decode.
    wire = answer.model_dump_json()
    wire.encode()
    assert server_event_adapter.validate_json(wire) == answer
    if isinstance(answer, Pong):
        assert send.logged is False
        return
    assert answer.code in ERROR_CODES, answer.code
    # Errors of an open session go to its log (and are replayed); before it, to the socket.
    assert send.logged is opened
    assert len(answer.message) <= MAX_ERROR_MESSAGE, (len(answer.message), answer.message[:200])
    if answer.request_id is not None:
        # Echoed only when it is a valid id, and then the frame's own.
        assert len(answer.request_id) <= 64 and REQUEST_ID.fullmatch(answer.request_id)
        raw = parsed(frame) if frame is not None else None
        assert isinstance(raw, dict) and raw.get("request_id") == answer.request_id


def frame_errors(actions: list[Action]) -> list[Error]:
    return [
        a.event
        for a in actions
        if isinstance(a, SendEvent) and isinstance(a.event, Error) and a.event.code in FRAME_ERRORS
    ]


def feed(machine: SessionMachine, frame: Frame) -> list[Action]:
    """Feed ``frame`` and check what holds for any frame in any state; return the actions."""
    before = machine.state
    scans, chats = set(machine.active_scans), set(machine.active_chats)
    text = frame.text
    actions = machine.receive_binary(frame.binary) if text is None else machine.receive_text(text)
    assert all(isinstance(a, ACTIONS) for a in actions), actions
    if before is State.CLOSED:
        assert actions == [] and machine.state is State.CLOSED
        assert (machine.active_scans, machine.active_chats) == (scans, chats)
        return actions
    closes = [a for a in actions if isinstance(a, Close)]
    # A close comes last, once.
    assert not closes or (len(closes) == 1 and actions[-1] is closes[0])
    for close in closes:
        assert close.code in CLOSE_CODES and close.code is CloseCode.POLICY_VIOLATION
        assert machine.state is State.CLOSED
    for action in actions:
        if isinstance(action, SendEvent):
            check_event(action, opened=before is State.OPEN, frame=frame.text)
    refused = frame_errors(actions)
    # Only an open session takes requests; a frame is one request at most.
    requests = [a for a in actions if not isinstance(a, SendEvent | Close)]
    assert len(requests) <= 1 and len(actions) - len(closes) == 1
    if requests and not isinstance(requests[0], Authenticate):
        assert before is State.OPEN
    limit = MAX_MESSAGE_BYTES if before is State.OPEN else MAX_START_MESSAGE_BYTES
    too_large = frame.text is not None and (
        len(frame.text) > limit
        # Within the limit in characters but not as UTF-8: a frame that cannot be encoded at
        # all (a lone surrogate) is refused as not UTF-8 first.
        or (_encodes(frame.text) and len(frame.text.encode()) > limit)
    )
    if too_large:
        assert [e.code for e in refused] == [ErrorCode.MESSAGE_TOO_LARGE], actions
    elif frame.valid is True:
        assert refused == [], actions
    elif frame.valid is False:
        assert len(refused) == 1, actions
    if refused and refused[0].code in (ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.INVALID_JSON):
        assert refused[0].request_id is None
    # Slots are taken by admission only, one at most, never beyond the caps.
    assert machine.active_scans >= scans and machine.active_chats >= chats
    assert len(machine.active_scans - scans) + len(machine.active_chats - chats) <= 1
    assert len(machine.active_scans) <= max(SCAN_CAP, len(scans))
    assert len(machine.active_chats) <= max(CHAT_CAP, len(chats))
    return actions


# --------------------------------------------------------------------------- the strategies


def test_the_strategies_cover_every_client_message() -> None:
    from protocol.messages import CLIENT_MESSAGES

    assert set(VALID) == {model.model_fields["type"].default for model in CLIENT_MESSAGES}


@FUZZ
@given(st.sampled_from(sorted(VALID)).flatmap(lambda kind: VALID[kind]))
def test_the_valid_strategies_draw_messages_the_schema_accepts(message: dict[str, Any]) -> None:
    assert client_message_adapter.validate_python(message).type == message["type"]


# --------------------------------------------------------------------------- one frame


def machine_in(state: str) -> SessionMachine:
    machine = new_machine()
    if state != "awaiting_start":
        [action] = machine.receive_text('{"type": "session.start", "token": "t"}')
        assert isinstance(action, Authenticate)
    if state == "open":
        machine.authenticated("s1", 0)
    return machine


VERSION_TRUE = Frame('{"type": "session.start", "token": "t", "v": true}', False, "bad_version")
VERSION_FLOAT = Frame('{"type": "session.start", "token": "t", "v": 1.0}', False, "bad_version")
LONG_TYPE = Frame(json.dumps({"type": "x" * 100_000}), False, "bad_type")
LONG_FIELD = Frame(json.dumps({"type": "ping", **{c * 50_000: 0 for c in "abcde"}}), False,
                   "unknown_field")
LONG_VERSION = Frame(json.dumps({"type": "session.start", "token": "t", "v": "9" * 3_000}), False,
                     "bad_version")
LONG_KIND = Frame(json.dumps({"type": "scan.start", "request_id": "r",
                              "image": {"kind": "k" * 100_000}}), False, "wrong_value")


@FUZZ
@given(state=st.sampled_from(["awaiting_start", "authenticating", "open"]), frame=frames())
# Found by this test. Protocol version 1 is the JSON number 1: true and 1.0 were taken for it.
@example(state="awaiting_start", frame=VERSION_TRUE)
@example(state="awaiting_start", frame=VERSION_FLOAT)
# Found by this test: a refusal quoted the unknown type, field name or version whole, so an
# error of megabytes went into the session's history (MAX_ERROR_MESSAGE).
@example(state="open", frame=LONG_TYPE)
@example(state="open", frame=LONG_FIELD)
@example(state="awaiting_start", frame=LONG_VERSION)
@example(state="open", frame=LONG_KIND)
def test_any_frame_in_any_state(state: str, frame: Frame) -> None:
    machine = machine_in(state)
    actions = feed(machine, frame)
    if frame.valid is True and not frame_errors(actions):
        kind = json.loads(frame.text or "")["type"]
        [action] = actions
        if kind == "session.start":
            # Refused while a session.start is being verified or was accepted.
            assert isinstance(action, Authenticate) is (state == "awaiting_start")
        elif state != "open":
            assert isinstance(action, SendEvent) and isinstance(action.event, Error)
            assert action.event.code is ErrorCode.NOT_AUTHENTICATED
        elif kind == "ping":
            assert isinstance(action, SendEvent) and isinstance(action.event, Pong)
        elif kind == "live.start":
            assert isinstance(action, StartLive)
        elif kind == "live.stop":  # no live mode is on in a fresh machine
            assert isinstance(action, SendEvent) and isinstance(action.event, Error)
            assert action.event.code is ErrorCode.LIVE_NOT_ACTIVE
        else:
            assert isinstance(action, REQUEST_FOR[kind])
            message = client_message_adapter.validate_python(json.loads(frame.text or ""))
            assert action.message == message
    # Whatever it was, the connection goes on (one refusal is far from the 1008 close).
    assert machine.state is (State.OPEN if state == "open" else State.AWAITING_START)
    assert feed(machine, Frame('{"type": "ping", "request_id": "p"}', True, "ping")) != []


# --------------------------------------------------------------------------- a whole connection


def test_a_verdict_after_the_close_neither_reopens_nor_closes_again() -> None:
    """Found by TestConnection (pinned here: a state machine test takes no @example). The
    handshake timed out, or the socket went, while the token was being verified: the verdict
    that comes after must not open a session on the closed connection nor close it twice."""
    for close in ("timed_out", "socket_closed"):
        machine = machine_in("authenticating")
        if close == "timed_out":
            assert [type(a) for a in machine.auth_timed_out()] == [Close]
        else:
            machine.closed()
        assert machine.auth_timed_out() == []
        assert machine.authentication_failed(ErrorCode.AUTH_INVALID, "bad token") == []
        machine.authenticated("s1", 0)
        assert machine.state is State.CLOSED and machine.session_id is None
        assert machine.receive_text('{"type": "ping"}') == []



class Connection(RuleBasedStateMachine):
    """A connection driven as the I/O layer drives it (server/ws/connection.py), checked
    against a reference model of docs/protocol.md after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.machine = new_machine()
        # The model.
        self.authenticating = False
        self.opened = False
        self.closed = False
        self.scans: set[str] = set()
        self.chats: set[str] = set()
        self.refused_in_a_row = 0
        self.last_seq = 0
        self.live: str | None = None
        self.stopped_live: list[str] = []

    @initialize(
        opened=st.booleans(),
        resumed=st.lists(POOL, unique=True, max_size=SCAN_CAP + CHAT_CAP),
        split=st.integers(0, SCAN_CAP),
    )
    def begin(self, opened: bool, resumed: list[str], split: int) -> None:
        """Half the runs start on an open session (resumed, with requests still running from
        the connection before), half go through the handshake."""
        if opened:
            self._feed(Frame('{"type": "session.start", "token": "t"}', True, "session.start"))
            self.authenticated(last_seq=0, resumed=resumed, split=split)

    # ------------------------------------------------------------ frames from the client

    def _feed(self, frame: Frame) -> list[Action]:
        event(f"a frame while {self.machine.state.value}")
        actions = feed(self.machine, frame)
        if self.closed:
            return actions
        refused = frame_errors(actions)
        self.refused_in_a_row = self.refused_in_a_row + 1 if refused else 0
        closes = [a for a in actions if isinstance(a, Close)]
        # The 1008 close comes with the tenth refused frame in a row, and only then.
        assert bool(closes) is (self.refused_in_a_row >= self.machine.max_invalid_frames)
        if closes:
            self.closed = True
        if any(isinstance(a, Authenticate) for a in actions):
            assert not self.authenticating and not self.opened
            self.authenticating = True
        for action in actions:
            # Live mode (docs/protocol.md section 15): one at a time.
            if isinstance(action, StartLive):
                assert self.opened and self.live is None
                self.live = action.message.request_id
            elif isinstance(action, StopLive):
                assert action.message.request_id == self.live
                self._live_ended()
            # Admission, as docs/protocol.md sections 6 and 12 describe it.
            if isinstance(action, StartScan | StartChat):
                running, cap = (
                    (self.scans, SCAN_CAP)
                    if isinstance(action, StartScan)
                    else (self.chats, CHAT_CAP)
                )
                request_id = action.message.request_id
                assert request_id not in self.scans | self.chats and len(running) < cap
                running.add(request_id)
        return actions

    @rule(frame=frames())
    def any_frame(self, frame: Frame) -> None:
        self._feed(frame)

    @precondition(lambda self: not self.opened and not self.closed)
    @rule(message=VALID["session.start"])
    def session_start(self, message: dict[str, Any]) -> None:
        """A valid session.start, so that the open session is reached often."""
        self._feed(Frame(json.dumps(message), True, "session.start"))

    @rule(
        kind=st.sampled_from(sorted(REQUEST_FOR)),
        request_id=POOL,
        data=st.data(),
    )
    def request(self, kind: str, request_id: str, data: st.DataObject) -> None:
        """A valid request with a request id of the pool: duplicates and caps get reached."""
        message = {**data.draw(VALID[kind]), "request_id": request_id}
        expected: ErrorCode | None = None
        if not self.opened:
            expected = ErrorCode.NOT_AUTHENTICATED
        elif kind in ("scan.start", "chat.message"):
            running, cap, code = (
                (self.scans, SCAN_CAP, ErrorCode.TOO_MANY_SCANS)
                if kind == "scan.start"
                else (self.chats, CHAT_CAP, ErrorCode.TOO_MANY_CHATS)
            )
            if request_id in self.scans | self.chats:
                expected = ErrorCode.DUPLICATE_REQUEST
            elif len(running) >= cap:
                expected = code
        event(f"{kind}: {expected or 'taken'}")  # (--hypothesis-show-statistics)
        actions = self._feed(Frame(json.dumps(message), True, "request"))
        if self.closed or frame_errors(actions):
            return  # closed before, or too large for the handshake's frame limit
        [action] = actions
        if expected is not None:
            assert isinstance(action, SendEvent) and isinstance(action.event, Error)
            assert action.event.code is expected and action.event.request_id == request_id
            retryable = expected in (ErrorCode.TOO_MANY_SCANS, ErrorCode.TOO_MANY_CHATS)
            assert action.event.retryable is retryable
            return
        # Scans and questions take a slot (see _feed); cancels, clarify answers and token
        # refreshes are passed through and hold none.
        assert isinstance(action, REQUEST_FOR[kind]), action

    @rule()
    def binary(self) -> None:
        self._feed(Frame(None, False, "binary", binary=b"\x00"))

    def _live_ended(self) -> None:
        assert self.live is not None
        self.stopped_live = [*self.stopped_live, self.live][-4:]
        self.live = None

    @rule(op=st.sampled_from(["start", "stop"]), request_id=POOL)
    def live_mode(self, op: str, request_id: str) -> None:
        """live.start and live.stop, with ids of the pool: one live mode at a time, and its
        id shared with scans and questions."""
        expected: ErrorCode | None = None
        if not self.opened:
            expected = ErrorCode.NOT_AUTHENTICATED
        elif op == "start" and self.live is not None:
            expected = ErrorCode.LIVE_ALREADY_ACTIVE
        elif op == "start" and request_id in self.scans | self.chats:
            expected = ErrorCode.DUPLICATE_REQUEST
        elif op == "stop" and request_id != self.live:
            expected = ErrorCode.LIVE_NOT_ACTIVE
        message = {"type": f"live.{op}", "request_id": request_id}
        actions = self._feed(Frame(json.dumps(message), True, "live"))
        if self.closed or frame_errors(actions):
            return
        [action] = actions
        if expected is not None:
            assert isinstance(action, SendEvent) and isinstance(action.event, Error)
            assert action.event.code is expected, (action, expected)
        else:
            assert isinstance(action, StartLive if op == "start" else StopLive)

    @rule(
        request_id=POOL,
        number=st.integers(0, 2**32 - 1),
        size=st.sampled_from([0, 3, MAX_LIVE_FRAME_BYTES, MAX_LIVE_FRAME_BYTES + 1]),
    )
    def camera_frame(self, request_id: str, number: int, size: int) -> None:
        """A well-formed camera frame: taken in live mode, dropped quietly when it is too large
        or its live mode was stopped lately, refused as a bad frame otherwise."""
        open_ = self.opened and not self.closed
        ours = open_ and request_id == self.live
        stopped = open_ and not ours and request_id in self.stopped_live
        data = encode_frame(request_id, number, 1, b"\xff" * size)
        actions = self._feed(Frame(None, ours or stopped, "camera", binary=data))
        if self.closed or frame_errors(actions):
            assert not ours and not stopped
            return
        [action] = actions
        if stopped:
            assert action == DropFrame(DropReason.STOPPED)
        elif size > MAX_LIVE_FRAME_BYTES:
            assert action == DropFrame(DropReason.TOO_LARGE)
        else:
            assert isinstance(action, LiveFrame) and action.frame.number == number
            assert len(action.frame.image) == size

    @precondition(lambda self: self.opened and self.live is not None)
    @rule(request_id=POOL)
    def live_scan(self, request_id: str) -> None:
        """Live mode asks for a scan slot: only within the cap, with an unused id."""
        admitted = self.machine.admit_live_scan(request_id)
        expected = (
            not self.closed
            and len(self.scans) < SCAN_CAP
            and request_id not in self.scans | self.chats
        )
        assert admitted is expected
        if admitted:
            self.scans.add(request_id)

    @precondition(lambda self: self.opened and not self.closed and self.live is not None)
    @rule()
    def live_idle(self) -> None:
        """The server ends live mode for want of frames."""
        self.machine.live_ended()
        self._live_ended()

    # ------------------------------------------------------------ answers of the I/O layer

    @precondition(lambda self: self.authenticating)
    @rule(
        last_seq=st.integers(0, 20),
        resumed=st.lists(POOL, unique=True, max_size=SCAN_CAP + CHAT_CAP),
        split=st.integers(0, SCAN_CAP),
    )
    def authenticated(self, last_seq: int, resumed: list[str], split: int) -> None:
        """The token was good: the session opens, with the scans and questions still running
        from an earlier connection when it was resumed."""
        self.authenticating = False
        self.machine.authenticated("s1", last_seq)
        if self.closed:
            return
        self.opened = True
        self.last_seq = last_seq
        scans, chats = set(resumed[:split]), set(resumed[split:][:CHAT_CAP])
        self.machine.scans_in_flight(scans)
        self.machine.chats_in_flight(chats)
        self.scans, self.chats = scans, chats

    @precondition(lambda self: self.authenticating)
    @rule(
        code=st.sampled_from(
            [ErrorCode.AUTH_INVALID, ErrorCode.AUTH_EXPIRED, ErrorCode.RESUME_FORBIDDEN]
        ),
        request_id=st.none() | POOL,
        now=CLOSE_NOW,
    )
    def authentication_failed(self, code: ErrorCode, request_id: str | None, now: bool) -> None:
        if not now:
            return
        self.authenticating = False
        actions = self.machine.authentication_failed(code, "no", request_id)
        if self.closed:
            assert actions == []
            return
        [send, close] = actions
        assert isinstance(send, SendEvent) and isinstance(send.event, Error)
        assert send.event.code is code and send.logged is False
        assert isinstance(close, Close) and close.code in CLOSE_CODES
        expected = CloseCode.RESUME_FORBIDDEN if code is ErrorCode.RESUME_FORBIDDEN else (
            CloseCode.AUTH_FAILED
        )
        assert close.code is expected
        self.closed = True

    @precondition(lambda self: not self.opened)
    @rule(now=CLOSE_NOW)
    def auth_timed_out(self, now: bool) -> None:
        """The handshake's timer: it runs until the session opens."""
        if not now:
            return
        actions = self.machine.auth_timed_out()
        if self.closed:
            assert actions == []
            return
        assert actions == [Close(CloseCode.AUTH_TIMEOUT, "no session.start received in time")]
        self.closed = True

    @precondition(lambda self: self.opened)
    @rule(request_id=POOL)
    def rejected(self, request_id: str) -> None:
        """The session service refused a request the machine let through."""
        self.machine.scan_rejected(request_id)
        self.scans.discard(request_id)
        self.chats.discard(request_id)

    @precondition(lambda self: self.opened)
    @rule(
        seq=st.integers(0, 40),
        event_type=st.sampled_from(["scan.done", "chat.done", "scan.accepted", "chat.delta"]),
        request_id=st.none() | POOL,
    )
    def deliver(self, seq: int, event_type: str, request_id: str | None) -> None:
        delivered = self.machine.should_deliver(seq, event_type, request_id)
        assert delivered is (seq > self.last_seq)
        if delivered:
            self.last_seq = seq
            if event_type == "scan.done":
                self.scans.discard(request_id or "")
            elif event_type == "chat.done":
                self.chats.discard(request_id or "")

    @rule(now=CLOSE_NOW)
    def socket_closed(self, now: bool) -> None:
        if not now:
            return
        self.machine.closed()
        self.closed = True

    # ------------------------------------------------------------ after every step

    @invariant()
    def slots_are_the_model_s_and_within_the_caps(self) -> None:
        assert self.machine.active_scans == self.scans
        assert self.machine.active_chats == self.chats
        assert len(self.scans) <= SCAN_CAP and len(self.chats) <= CHAT_CAP
        # Scans and questions share one space of request ids.
        assert not self.scans & self.chats

    @invariant()
    def the_state_is_the_model_s(self) -> None:
        if self.closed:
            assert self.machine.state is State.CLOSED
        elif self.opened:
            assert self.machine.state is State.OPEN
        else:
            assert self.machine.state is State.AWAITING_START
        assert self.machine.last_seq == self.last_seq
        if not self.closed:
            assert self.machine.live_request_id == self.live


Connection.TestCase.settings = STATEFUL
TestConnection = Connection.TestCase


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
