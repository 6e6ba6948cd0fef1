"""Sans-I/O state machine of one coaching connection.

The machine is fed raw text frames and returns *actions*: what the I/O layer must do next
(send an event, verify a token, start or cancel a scan, close). It owns every protocol rule
that does not need I/O: message size, JSON and schema validation, the order of messages
(``session.start`` first), the caps on concurrent scans and on concurrent questions, and
de-duplication of delivered events by ``seq``. It never awaits and imports nothing from the
server, so it is tested synchronously and any transport can drive it.

Input is distrusted in order of cost: the frame's length first (a small limit until
``session.start`` is accepted), then its JSON shape (depth and number of values, see
:mod:`protocol.bounded_json`) before it is parsed, then the schema. Every refusal is an
``error`` event and the connection goes on, except that ``max_invalid_frames`` refused frames
in a row close it with 1008: a client that only sends garbage is not worth a socket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from pydantic import ValidationError

from protocol.bounded_json import JsonRejected, parse
from protocol.live import CameraFrame, FrameRejected, decode_frame
from protocol.messages import (
    MAX_LIVE_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_START_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    REQUEST_ID_PATTERN,
    AuthRefresh,
    ChatMessage,
    ClarifyAnswer,
    ClientMessage,
    DropReason,
    Error,
    ErrorCode,
    LiveStart,
    LiveStop,
    Ping,
    Pong,
    ScanCancel,
    ScanStart,
    SessionStart,
    client_message_adapter,
    is_protocol_version,
)


class CloseCode(IntEnum):
    """WebSocket close codes the server uses. Codes 4xxx are ours and mean: do not retry blindly."""

    NORMAL = 1000
    GOING_AWAY = 1001  # lifetime cap or idle timeout: reconnect and resume
    POLICY_VIOLATION = 1008  # too many refused frames in a row: fix the client, do not retry
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # server restarting: reconnect (with backoff) and resume
    TRY_AGAIN_LATER = 1013  # the client read too slowly: reconnect and resume
    AUTH_FAILED = 4001  # token missing, malformed, forged or expired: get a new token
    RESUME_FORBIDDEN = 4003  # the session to resume belongs to someone else
    AUTH_TIMEOUT = 4008  # no session.start in time


#: Refused frames in a row after which the connection is closed with 1008.
MAX_INVALID_FRAMES = 10

#: Codes of frames refused for what they are (not for the state they arrive in): these count
#: towards ``max_invalid_frames``.
_FRAME_ERRORS = frozenset(
    {
        ErrorCode.INVALID_JSON,
        ErrorCode.INVALID_MESSAGE,
        ErrorCode.UNKNOWN_TYPE,
        ErrorCode.MESSAGE_TOO_LARGE,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.INVALID_FRAME,
    }
)
#: Live request ids remembered after their ``live.stop``: frames still in flight for them are
#: dropped quietly (``live.dropped``), not refused one error each.
_STOPPED_REMEMBERED = 4


class State(Enum):
    AWAITING_START = "awaiting_start"
    OPEN = "open"
    CLOSED = "closed"


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class SendEvent:
    """Send ``event``. ``logged`` events go through the session's event log and get a seq;
    the others are connection-level (seq 0) and are written to this socket only."""

    event: Error | Pong
    logged: bool


@dataclass(frozen=True, slots=True)
class Authenticate:
    message: SessionStart


@dataclass(frozen=True, slots=True)
class StartScan:
    message: ScanStart


@dataclass(frozen=True, slots=True)
class CancelScan:
    message: ScanCancel


@dataclass(frozen=True, slots=True)
class AnswerClarify:
    message: ClarifyAnswer


@dataclass(frozen=True, slots=True)
class StartChat:
    message: ChatMessage


@dataclass(frozen=True, slots=True)
class RefreshAuth:
    message: AuthRefresh


@dataclass(frozen=True, slots=True)
class StartLive:
    message: LiveStart


@dataclass(frozen=True, slots=True)
class StopLive:
    message: LiveStop


@dataclass(frozen=True, slots=True)
class LiveFrame:
    """A camera frame of the live request that is on (its image not looked at yet)."""

    frame: CameraFrame


@dataclass(frozen=True, slots=True)
class DropFrame:
    """A camera frame to drop unseen, counted in the next ``live.dropped`` notice."""

    reason: DropReason


@dataclass(frozen=True, slots=True)
class Close:
    code: CloseCode
    reason: str


Action = (
    SendEvent
    | Authenticate
    | StartScan
    | CancelScan
    | AnswerClarify
    | StartChat
    | RefreshAuth
    | StartLive
    | StopLive
    | LiveFrame
    | DropFrame
    | Close
)


@dataclass
class SessionMachine:
    """One connection's protocol state. See the module docstring."""

    max_concurrent_scans: int = 4
    max_concurrent_chats: int = 2
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_start_message_bytes: int = MAX_START_MESSAGE_BYTES
    max_invalid_frames: int = MAX_INVALID_FRAMES
    state: State = State.AWAITING_START
    session_id: str | None = None
    #: Highest seq delivered to the client; events at or below it are duplicates.
    last_seq: int = 0
    active_scans: set[str] = field(default_factory=set)
    active_chats: set[str] = field(default_factory=set)
    #: The request id of the live mode that is on, if any, and of the last few stopped.
    live_request_id: str | None = None
    stopped_live: list[str] = field(default_factory=list)
    _authenticating: bool = False
    #: Frames refused in a row (see ``_FRAME_ERRORS``).
    _invalid_in_a_row: int = 0

    # ------------------------------------------------------------------ input from the client

    def receive_text(self, text: str) -> list[Action]:
        if self.state is State.CLOSED:
            return []
        limit = (
            self.max_message_bytes if self.state is State.OPEN else self.max_start_message_bytes
        )
        # A str's length bounds its UTF-8 size from below: the common refusal costs nothing.
        if len(text) <= limit:
            try:
                size = len(text.encode())
            except UnicodeEncodeError:  # a transport handed over a lone surrogate
                return self._reject(ErrorCode.INVALID_JSON, "the frame is not valid UTF-8", None)
        if len(text) > limit or size > limit:
            when = "" if self.state is State.OPEN else " before session.start is accepted"
            return self._reject(
                ErrorCode.MESSAGE_TOO_LARGE, f"message is larger than {limit} bytes{when}", None
            )
        try:
            raw = parse(text)
        except JsonRejected as exc:
            code = ErrorCode.INVALID_MESSAGE if exc.too_complex else ErrorCode.INVALID_JSON
            return self._reject(code, exc.message, None)
        request_id = _request_id_of(raw)
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            return self._reject(
                ErrorCode.INVALID_MESSAGE, "a message is a JSON object with a 'type'", request_id
            )
        try:
            message: ClientMessage = client_message_adapter.validate_python(raw)
        except ValidationError as exc:
            return self._reject(*_describe(exc, raw), request_id)
        self._invalid_in_a_row = 0
        return self._dispatch(message)

    def receive_binary(self, data: bytes) -> list[Action]:
        """A binary message: a camera frame of live mode (``protocol.live``), or refused."""
        if self.state is State.CLOSED:
            return []
        if self.state is not State.OPEN:
            return self._reject(
                ErrorCode.INVALID_MESSAGE,
                "binary frames are camera frames of live mode; send session.start (JSON) first",
                None,
            )
        try:
            frame = decode_frame(data)
        except FrameRejected as exc:
            return self._reject(ErrorCode.INVALID_FRAME, str(exc), None)
        if frame.request_id != self.live_request_id:
            if frame.request_id in self.stopped_live:
                return [DropFrame(DropReason.STOPPED)]
            # Refused as a bad frame (they count towards the 1008 close): a client that sends
            # frames nobody asked for is broken, and each one costs a parse.
            return self._reject(
                ErrorCode.INVALID_FRAME,
                "binary frames are camera frames of live mode; send live.start first"
                if self.live_request_id is None
                else f"camera frame for {frame.request_id!r}; live mode is on as "
                f"{self.live_request_id!r}",
                None,
            )
        self._invalid_in_a_row = 0
        if len(frame.image) > MAX_LIVE_FRAME_BYTES:
            return [DropFrame(DropReason.TOO_LARGE)]
        return [LiveFrame(frame)]

    def _dispatch(self, message: ClientMessage) -> list[Action]:
        if isinstance(message, SessionStart):
            if self.state is State.OPEN or self._authenticating:
                return self._reject(
                    ErrorCode.ALREADY_AUTHENTICATED,
                    "session.start was already accepted on this connection",
                    message.request_id,
                )
            self._authenticating = True
            return [Authenticate(message)]
        if self.state is not State.OPEN:
            return self._reject(
                ErrorCode.NOT_AUTHENTICATED,
                "send session.start with a token before anything else",
                message.request_id,
            )
        if isinstance(message, Ping):
            return [SendEvent(Pong(request_id=message.request_id), logged=False)]
        if isinstance(message, ScanStart):
            refusal = self._admit(
                message.request_id,
                self.active_scans,
                self.max_concurrent_scans,
                ErrorCode.TOO_MANY_SCANS,
                "scans may run at once",
            )
            return refusal or [StartScan(message)]
        if isinstance(message, ScanCancel):
            return [CancelScan(message)]
        if isinstance(message, ClarifyAnswer):
            return [AnswerClarify(message)]
        if isinstance(message, AuthRefresh):
            return [RefreshAuth(message)]
        if isinstance(message, ChatMessage):
            refusal = self._admit(
                message.request_id,
                self.active_chats,
                self.max_concurrent_chats,
                ErrorCode.TOO_MANY_CHATS,
                "questions may be answered at once",
            )
            return refusal or [StartChat(message)]
        if isinstance(message, LiveStart):
            return self._start_live(message)
        if isinstance(message, LiveStop):
            return self._stop_live(message)
        raise AssertionError(f"unhandled message {message!r}")  # pragma: no cover

    def _start_live(self, message: LiveStart) -> list[Action]:
        request_id = message.request_id
        if self.live_request_id is not None:
            return self._reject(
                ErrorCode.LIVE_ALREADY_ACTIVE,
                f"live mode is already on as {self.live_request_id!r}; send live.stop first",
                request_id,
            )
        if request_id in self.active_scans or request_id in self.active_chats:
            return self._reject(
                ErrorCode.DUPLICATE_REQUEST,
                f"request_id {request_id!r} is already in use by a running scan or question",
                request_id,
            )
        self.live_request_id = request_id
        return [StartLive(message)]

    def _stop_live(self, message: LiveStop) -> list[Action]:
        if message.request_id != self.live_request_id:
            return self._reject(
                ErrorCode.LIVE_NOT_ACTIVE,
                f"live mode is not on as {message.request_id!r}",
                message.request_id,
            )
        self.live_ended()
        return [StopLive(message)]

    def live_ended(self) -> None:
        """Live mode is off (stopped by the client, or by the server when idle)."""
        if self.live_request_id is not None:
            self.stopped_live = [*self.stopped_live, self.live_request_id][-_STOPPED_REMEMBERED:]
        self.live_request_id = None

    def admit_live_scan(self, request_id: str) -> bool:
        """Take a scan that live mode starts, if the cap on concurrent scans has room (else
        live mode tries again on a later steady frame)."""
        if self.state is not State.OPEN or len(self.active_scans) >= self.max_concurrent_scans:
            return False
        if request_id in self.active_scans or request_id in self.active_chats:
            return False
        self.active_scans.add(request_id)
        return True

    def _admit(
        self, request_id: str, running: set[str], cap: int, code: ErrorCode, what: str
    ) -> list[Action] | None:
        """Take a scan or a question into ``running``, or return its refusal. Scans and
        questions share one space of request ids, and each kind has its own cap."""
        if request_id in self.active_scans or request_id in self.active_chats:
            return self._reject(
                ErrorCode.DUPLICATE_REQUEST,
                f"request_id {request_id!r} is already in use by a running scan or question",
                request_id,
            )
        if len(running) >= cap:
            return self._reject(code, f"at most {cap} {what}", request_id, retryable=True)
        running.add(request_id)
        return None

    def _reject(
        self, code: ErrorCode, message: str, request_id: str | None, *, retryable: bool = False
    ) -> list[Action]:
        error = Error(code=code, message=message, request_id=request_id, retryable=retryable)
        # Before the session exists there is no log to put the error in.
        actions: list[Action] = [SendEvent(error, logged=self.state is State.OPEN)]
        if code in _FRAME_ERRORS:
            self._invalid_in_a_row += 1
            if self._invalid_in_a_row >= self.max_invalid_frames:
                self.state = State.CLOSED
                actions.append(
                    Close(
                        CloseCode.POLICY_VIOLATION,
                        f"{self._invalid_in_a_row} invalid frames in a row",
                    )
                )
        return actions

    # ------------------------------------------------------------------ results of the I/O layer

    # A closed machine stays closed whatever the I/O layer reports after the close (a token
    # verified, or refused, after the handshake timed out or the socket went): the close was
    # already decided, and a second one, or a session opened on a closed connection, would
    # contradict it.

    def authenticated(self, session_id: str, last_seq: int) -> None:
        self._authenticating = False
        if self.state is State.CLOSED:
            return
        self.state = State.OPEN
        self.session_id = session_id
        self.last_seq = last_seq

    def authentication_failed(
        self, code: ErrorCode, message: str, request_id: str | None = None
    ) -> list[Action]:
        self._authenticating = False
        if self.state is State.CLOSED:
            return []
        close = CloseCode.RESUME_FORBIDDEN if code is ErrorCode.RESUME_FORBIDDEN else (
            CloseCode.AUTH_FAILED
        )
        self.state = State.CLOSED
        error = Error(code=code, message=message, request_id=request_id)
        return [SendEvent(error, logged=False), Close(close, message)]

    def auth_timed_out(self) -> list[Action]:
        if self.state is State.CLOSED:
            return []
        self.state = State.CLOSED
        return [Close(CloseCode.AUTH_TIMEOUT, "no session.start received in time")]

    def scans_in_flight(self, request_ids: set[str]) -> None:
        """A resumed session's scans that were accepted and have not ended: they count
        towards the limit on this connection as they did on the one that dropped."""
        self.active_scans |= request_ids

    def chats_in_flight(self, request_ids: set[str]) -> None:
        """A resumed session's questions that were claimed and not answered yet: they count
        towards the limit on this connection as they did on the one that dropped."""
        self.active_chats |= request_ids

    def scan_rejected(self, request_id: str) -> None:
        """The I/O layer refused a request the machine let through (bad upload, duplicate)."""
        self.active_scans.discard(request_id)
        self.active_chats.discard(request_id)

    def should_deliver(self, seq: int, event_type: str, request_id: str | None) -> bool:
        """Decide whether a logged event goes to the client, and track scan ends."""
        if seq <= self.last_seq:
            return False
        self.last_seq = seq
        if request_id is not None:
            if event_type == "scan.done":
                self.active_scans.discard(request_id)
            elif event_type == "chat.done":
                self.active_chats.discard(request_id)
        return True

    def closed(self) -> None:
        self.state = State.CLOSED


_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


def _request_id_of(raw: object) -> str | None:
    """The request id of a refused message, to echo in the error, if it is a valid one.

    An invalid id is never echoed: the error is logged and replayed, and a value the schema
    refuses (a lone surrogate, say) would be written into the session's history."""
    if isinstance(raw, dict):
        value = raw.get("request_id")
        # fullmatch: with match, "$" would also let through an id ending in a newline.
        if isinstance(value, str) and 0 < len(value) <= 64 and _REQUEST_ID.fullmatch(value):
            return value
    return None


def _describe(exc: ValidationError, raw: dict[str, object]) -> tuple[ErrorCode, str]:
    """Turn a pydantic error into one stable code and a message a client author can act on."""
    errors = exc.errors()
    first = errors[0]
    if first["type"] == "union_tag_invalid" and not first["loc"]:
        return ErrorCode.UNKNOWN_TYPE, f"unknown message type {_excerpt(repr(raw.get('type')))}"
    if raw.get("type") == "session.start" and not is_protocol_version(
        raw.get("v", PROTOCOL_VERSION)
    ):
        return (
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version {_excerpt(repr(raw.get('v')))} is not supported; "
            f"use {PROTOCOL_VERSION}",
        )
    parts = []
    for err in errors[:5]:
        # The first element of loc is the union tag; the field path follows it.
        loc = ".".join(str(p) for p in err["loc"][1:]) or "message"
        parts.append(f"{_excerpt(loc)}: {_excerpt(err['msg'], 2 * _EXCERPT)}")
    return ErrorCode.INVALID_MESSAGE, "; ".join(parts)


#: Most characters of a client's value (a type, a field name, a version) a refusal quotes.
_EXCERPT = 100


def _excerpt(text: str, limit: int = _EXCERPT) -> str:
    """``text``, cut to ``limit`` characters. A refusal names what was wrong; it does not
    echo a frame: the error is logged and replayed, and an unknown type or field name of a
    megabyte would otherwise be stored whole in the session's history, once per frame."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
