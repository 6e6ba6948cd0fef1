"""Message models of the coaching WebSocket, protocol version 1.

Client messages and server events are pydantic v2 models in two tagged unions on ``type``.
Every server event carries:

* ``seq``: a per-session sequence number that only grows (1, 2, 3, ... with no gaps inside an
  epoch). ``0`` marks an event sent outside a session (before ``session.start`` succeeded);
  such events are never replayed.
* ``request_id``: the id of the client message the event answers, or ``null``.
* ``ts``: when the server produced the event (UTC, ISO 8601).

A client that drops off reconnects with ``session.start`` carrying ``resume`` (its session id,
epoch and the last seq it processed) and receives exactly the events it missed. If the server
no longer has them, ``session.ready`` says ``resumed: false`` with a new epoch.

The JSON Schema of every message and the AsyncAPI document in ``docs/`` are generated from
this module (``python -m protocol.export``).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
)

from protocol.streams import Stream

PROTOCOL_VERSION: Literal[1] = 1

#: Largest text frame the session accepts. Inline camera frames must fit in it.
MAX_MESSAGE_BYTES = 1_572_864
#: Largest frame the WebSocket layer itself takes (the server's ``ws_max_size``). A little over
#: the session's limit, so that a message just over it gets an ``error`` event instead of a
#: bare 1009 close; what is over this is closed with 1009 before it is read whole. No more
#: than a little: the layer buffers an unfinished frame up to this size for every socket,
#: signed in or not (it was 4 MiB: a probe held 240 MiB with 60 half-sent frames).
MAX_FRAME_BYTES = MAX_MESSAGE_BYTES + 64 * 1024
#: Largest text frame accepted before ``session.start`` succeeded: a ``session.start`` with the
#: longest token fits, and an unauthenticated client cannot make the server parse megabytes.
MAX_START_MESSAGE_BYTES = 16_384
#: Largest decoded inline image.
MAX_INLINE_IMAGE_BYTES = 1_048_576

REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]+$"

#: Largest image in one binary camera frame of live mode (the header comes on top).
MAX_LIVE_FRAME_BYTES = 262_144
#: Camera frames a live request may send per second (over any one-second window); the rest
#: are dropped, and the client is told (``live.dropped``).
MAX_LIVE_FPS = 8
#: Longest ``live.start`` request id: the scans it triggers are ``<id>:<n>``, within 64.
MAX_LIVE_REQUEST_ID = 48

RequestId = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=REQUEST_ID_PATTERN),
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Locale(StrEnum):
    KO = "ko"
    EN = "en"


# --------------------------------------------------------------------------- shared parts


class GeoPoint(_Model):
    """A WGS84 position. Numbers must be JSON numbers: ``"37.5"`` is refused, not coerced."""

    lat: float = Field(ge=-90, le=90, strict=True, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, strict=True, allow_inf_nan=False)
    accuracy_m: float | None = Field(default=None, ge=0, strict=True, allow_inf_nan=False)


class District(_Model):
    """The 시군구 (district) a location lies in, and whether its own rule was applied."""

    code: str = Field(
        description="The current 5-digit 행정안전부 code (강원 51xxx, 전북 52xxx, 군위군 27720)."
    )
    name: str = Field(description='The official Korean name, e.g. "서울특별시 강남구".')
    local_rule: bool = Field(
        default=False,
        description="True when the answer applied this district's own rule (its ``local.*`` "
        "ids are in ``rule_ids``); false when the district has none for this item and the "
        "national rule applies.",
    )


class UploadImage(_Model):
    """An image uploaded beforehand through ``POST /api/v1/uploads``."""

    kind: Literal["upload"] = "upload"
    key: str = Field(min_length=1, max_length=512)


class InlineImage(_Model):
    """A live camera frame sent inside the message, base64 encoded (standard alphabet)."""

    kind: Literal["inline"] = "inline"
    content_type: Literal["image/jpeg", "image/png", "image/webp"]
    data: str = Field(min_length=4)

    @field_validator("data")
    @classmethod
    def _valid_base64(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("data is not valid base64") from exc
        if len(raw) > MAX_INLINE_IMAGE_BYTES:
            raise ValueError(f"inline image is larger than {MAX_INLINE_IMAGE_BYTES} bytes")
        return value

    def decode(self) -> bytes:
        return base64.b64decode(self.data)


ImageRef = Annotated[UploadImage | InlineImage, Field(discriminator="kind")]


class Resume(_Model):
    session_id: str = Field(min_length=1, max_length=64)
    epoch: str = Field(min_length=1, max_length=64)
    last_seq: int = Field(ge=0, strict=True)


# --------------------------------------------------------------------------- client messages


def is_protocol_version(value: object) -> bool:
    """Whether ``value`` is this protocol's version: the JSON number 1, not ``true`` nor
    ``1.0`` (which ``Literal[1]`` alone would take for it)."""
    return type(value) is int and value == PROTOCOL_VERSION


class SessionStart(_Model):
    """First message of every connection: authenticates and opens or resumes a session."""

    type: Literal["session.start"] = "session.start"
    v: Literal[1] = PROTOCOL_VERSION
    request_id: RequestId | None = None
    token: str = Field(min_length=1, max_length=8192)
    locale: Locale = Locale.KO
    resume: Resume | None = None

    @field_validator("v", mode="before")
    @classmethod
    def _version_is_the_number_1(cls, value: object) -> object:
        if not is_protocol_version(value):
            raise ValueError(f"Input should be {PROTOCOL_VERSION}")
        return value


class ScanStart(_Model):
    """Starts one scan. ``request_id`` must be unique within the session."""

    type: Literal["scan.start"] = "scan.start"
    request_id: RequestId
    image: ImageRef
    location: GeoPoint | None = None
    locale: Locale | None = None


class ScanCancel(_Model):
    """Cancels the scan started with ``request_id``."""

    type: Literal["scan.cancel"] = "scan.cancel"
    request_id: RequestId


class LiveStart(_Model):
    """Starts live mode: camera frames follow as binary frames (``protocol.live``); the
    server answers ``live.started``, then ``live.hint`` events, and starts a scan
    (``<request_id>:<n>``) whenever an item is held steady."""

    type: Literal["live.start"] = "live.start"
    request_id: str = Field(
        min_length=1, max_length=MAX_LIVE_REQUEST_ID, pattern=REQUEST_ID_PATTERN
    )
    locale: Locale | None = None
    location: GeoPoint | None = None


class LiveStop(_Model):
    """Ends live mode; a scan it started runs on to its ``scan.done``."""

    type: Literal["live.stop"] = "live.stop"
    request_id: RequestId


class Ping(_Model):
    type: Literal["ping"] = "ping"
    request_id: RequestId | None = None


class ClarifyAnswer(_Model):
    """The person's pick among a ``scan.clarify`` event's choices; the scan then continues."""

    type: Literal["scan.clarify.answer"] = "scan.clarify.answer"
    request_id: RequestId = Field(description="The scan's request id.")
    choice: str = Field(min_length=1, max_length=64, description="A choice's ``label``.")


class ChatMessage(_Model):
    """A follow-up question; answered by ``chat.delta`` events and one ``chat.done``."""

    type: Literal["chat.message"] = "chat.message"
    request_id: RequestId
    text: str = Field(max_length=20_000)
    scan_id: str | None = Field(
        default=None, max_length=64, description="The scan the question is about, if any."
    )
    locale: Locale | None = None
    location: GeoPoint | None = Field(
        default=None,
        description="Where the person is, for their district's rules; without it a question "
        "about a scan uses that scan's location.",
    )


class AuthRefresh(_Model):
    """Replace the session's access token before it expires, without reconnecting."""

    type: Literal["auth.refresh"] = "auth.refresh"
    request_id: RequestId | None = None
    token: str = Field(min_length=1, max_length=8192)


ClientMessage = Annotated[
    SessionStart
    | ScanStart
    | ScanCancel
    | Ping
    | ClarifyAnswer
    | ChatMessage
    | AuthRefresh
    | LiveStart
    | LiveStop,
    Field(discriminator="type"),
]
client_message_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# --------------------------------------------------------------------------- result parts


class OfficialCategory(_Model):
    """An official category path, spelled exactly as in the Ministry's dictionary."""

    major: str
    middle: str | None = None
    minor: str | None = None


class Signal(_Model):
    """One judged property of the item with the model's confidence in it."""

    value: str
    confidence: float = Field(ge=0, le=1)


class Alternative(_Model):
    label: str
    stream: Stream
    confidence: float = Field(ge=0, le=1)


class Classification(_Model):
    """What the vision stage believes the item is."""

    label: str = Field(description="Item label, e.g. 'pet_bottle', 'cardboard', 'battery'.")
    name_ko: str
    name_en: str
    stream: Stream
    category: OfficialCategory
    confidence: float = Field(ge=0, le=1)
    material: Signal | None = None
    shape: Signal | None = None
    parts: list[Signal] = Field(default_factory=list)
    mixed: Signal | None = Field(default=None, description="value 'yes' or 'no'.")
    contamination: Signal | None = Field(
        default=None, description="value 'clean', 'light' or 'heavy'."
    )
    alternatives: list[Alternative] = Field(default_factory=list)
    model: str = Field(description="Which model produced this, with its version.")
    confirmed: bool = Field(
        default=False, description="True when the person picked it in answer to scan.clarify."
    )


class PlaceLinks(_Model):
    kakao: str
    naver: str
    google: str


class Place(_Model):
    id: str
    kind: str
    name: str
    address: str | None = None
    lat: float
    lon: float
    distance_m: float = Field(ge=0)
    hours: str | None = None
    accepts: list[Stream] = Field(default_factory=list)
    links: PlaceLinks


class ScanStatus(StrEnum):
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Stage(StrEnum):
    QUEUE = "queue"
    VISION = "vision"
    COACHING = "coaching"
    LOCATIONS = "locations"


class ErrorCode(StrEnum):
    """Stable error codes. ``docs/protocol.md`` documents each one."""

    INVALID_JSON = "invalid_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_MESSAGE = "invalid_message"
    MESSAGE_TOO_LARGE = "message_too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    NOT_AUTHENTICATED = "not_authenticated"
    ALREADY_AUTHENTICATED = "already_authenticated"
    AUTH_INVALID = "auth_invalid"
    AUTH_EXPIRED = "auth_expired"
    DUPLICATE_REQUEST = "duplicate_request"
    UNKNOWN_REQUEST = "unknown_request"
    TOO_MANY_SCANS = "too_many_scans"
    TOO_MANY_CHATS = "too_many_chats"
    INVALID_CHOICE = "invalid_choice"
    RATE_LIMITED = "rate_limited"
    UPLOAD_NOT_FOUND = "upload_not_found"
    UPLOAD_FORBIDDEN = "upload_forbidden"
    UPLOAD_QUOTA_EXCEEDED = "upload_quota_exceeded"
    IMAGE_INVALID = "image_invalid"
    RESUME_FORBIDDEN = "resume_forbidden"
    LIVE_ALREADY_ACTIVE = "live_already_active"
    LIVE_NOT_ACTIVE = "live_not_active"
    INVALID_FRAME = "invalid_frame"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    STAGE_FAILED = "stage_failed"
    SERVICE_UNAVAILABLE = "service_unavailable"
    INTERNAL = "internal"


class ErrorInfo(_Model):
    code: ErrorCode
    message: str
    retryable: bool = False


# --------------------------------------------------------------------------- server events


class _Event(_Model):
    seq: int = Field(default=0, ge=0)
    request_id: str | None = None
    ts: datetime = Field(default_factory=utcnow)


class SessionReady(_Event):
    """Connection-level (seq 0): the session is open; logged events follow."""

    type: Literal["session.ready"] = "session.ready"
    v: Literal[1] = PROTOCOL_VERSION
    session_id: str
    epoch: str
    resumed: bool = Field(description="True when the missed events follow this one.")
    last_seq: int = Field(
        ge=0, description="Head of the session's event stream when this connection opened."
    )
    user_id: str
    heartbeat_interval_s: float
    expires_at: datetime = Field(description="When the server will end this connection.")


class SessionExpiring(_Event):
    """Connection-level (seq 0): the server will close this connection at ``close_at``
    (lifetime cap). Reconnect and resume before or after; nothing is lost."""

    type: Literal["session.expiring"] = "session.expiring"
    close_at: datetime
    reason: str


class ScanAccepted(_Event):
    type: Literal["scan.accepted"] = "scan.accepted"
    scan_id: str


class ScanClassified(_Event):
    type: Literal["scan.classified"] = "scan.classified"
    scan_id: str
    classification: Classification


class CoachingDelta(_Event):
    type: Literal["coaching.delta"] = "coaching.delta"
    scan_id: str
    index: int = Field(ge=0, description="Position of this delta in the scan's coaching text.")
    text: str


class CoachingDone(_Event):
    type: Literal["coaching.done"] = "coaching.done"
    scan_id: str
    text: str = Field(description="The whole coaching text: the deltas joined.")
    rule_ids: list[str] = Field(default_factory=list)
    backend: str
    fallback_reason: str | None = None
    district: District | None = Field(
        default=None,
        description="The district of the scan's location; null without a location or outside "
        "every district (at sea, abroad), where the national rule applies.",
    )


class BinsSuggested(_Event):
    type: Literal["bins.suggested"] = "bins.suggested"
    scan_id: str
    stream: Stream
    places: list[Place]
    location_used: bool
    note: str | None = Field(default=None, description="Guidance when no place is listed.")


class ScanDone(_Event):
    type: Literal["scan.done"] = "scan.done"
    scan_id: str
    status: ScanStatus
    timings_ms: dict[Stage, float] = Field(default_factory=dict)
    error: ErrorInfo | None = None


class Error(_Event):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    retryable: bool = False


class ClarifyChoice(_Model):
    label: str
    stream: Stream
    text: str


class ScanClarify(_Event):
    """The classifier is unsure: ask the person. Answer with ``scan.clarify.answer``; a second
    ``scan.classified`` with ``confirmed: true`` follows, then the coaching."""

    type: Literal["scan.clarify"] = "scan.clarify"
    scan_id: str
    question: str
    choices: list[ClarifyChoice] = Field(min_length=2)
    timeout_s: float = Field(description="After this the scan continues with the best guess.")


class ChatDelta(_Event):
    type: Literal["chat.delta"] = "chat.delta"
    index: int = Field(ge=0)
    text: str


class ChatDone(_Event):
    type: Literal["chat.done"] = "chat.done"
    scan_id: str | None = None
    text: str
    item_ids: list[int] = Field(default_factory=list)
    rule_ids: list[str] = Field(default_factory=list)
    backend: str
    fallback_reason: str | None = None
    outcome: str = Field(
        description="answered, not_known, off_topic, refused, invalid, or failed (ask again)."
    )
    district: District | None = Field(
        default=None,
        description="The district of the question's location (or its scan's); null without "
        "one or outside every district, where the national rule applies.",
    )


class AuthExpiring(_Event):
    """Connection-level (seq 0): the access token expires at ``expires_at``; send
    ``auth.refresh`` with a new one before then or the connection closes with 4001."""

    type: Literal["auth.expiring"] = "auth.expiring"
    expires_at: datetime


class AuthRefreshed(_Event):
    """Connection-level (seq 0): the new token is in use."""

    type: Literal["auth.refreshed"] = "auth.refreshed"
    expires_at: datetime


class Budget(_Model):
    """What is left of one kind of request (scans or chat) for this user."""

    limit_minute: int
    remaining_minute: int
    limit_day: int
    remaining_day: int
    reset_s: int = Field(description="Seconds until the budget that binds now refills.")


class RateLimitsUpdated(_Event):
    """Connection-level (seq 0): the user's budgets, sent when the session opens and after
    every scan or chat request, so the app can warn before a request is refused."""

    type: Literal["rate_limits.updated"] = "rate_limits.updated"
    scans: Budget | None = None
    chats: Budget | None = None


class LiveIssue(StrEnum):
    """What is wrong with a camera picture, or with what it shows."""

    BLURRY = "blurry"
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"
    TOO_FAR = "too_far"
    CUT_OFF = "cut_off"
    MOVING = "moving"
    UNSURE = "unsure"


class DropReason(StrEnum):
    """Why camera frames were dropped unseen."""

    RATE = "rate"
    TOO_LARGE = "too_large"
    NOT_IMAGE = "not_image"
    OUT_OF_ORDER = "out_of_order"
    STOPPED = "stopped"


class FrameQuality(_Model):
    brightness: float = Field(ge=0, le=1, description="Mean luminance, 0 black to 1 white.")
    sharpness: float = Field(
        ge=0, description="Fine detail over coarse detail; below about 0.5 means blurred."
    )
    motion: float | None = Field(
        default=None, ge=0, le=1, description="Change since the previous analysed frame."
    )
    coverage: float = Field(ge=0, le=1, description="Share of the picture the item fills.")


class LiveStarted(_Event):
    """Connection-level (seq 0): live mode is on; send frames within these limits."""

    type: Literal["live.started"] = "live.started"
    max_frame_bytes: int
    max_fps: int
    steady_ms: int = Field(description="How long an item must be held steady to be scanned.")


class LiveHint(_Event):
    """Connection-level (seq 0): what one analysed camera frame shows."""

    type: Literal["live.hint"] = "live.hint"
    frame: int = Field(ge=0, description="The frame number this hint describes.")
    captured_ms: int = Field(ge=0, description="That frame's timestamp, as the client sent it.")
    skipped: int = Field(
        ge=0, description="Frames replaced unseen by newer ones since the previous hint."
    )
    label: str | None = Field(default=None, description="Best guess; null when unsure.")
    name: str | None = Field(default=None, description="The guess's name in the locale.")
    stream: Stream | None = None
    confidence: float = Field(ge=0, le=1)
    issues: list[LiveIssue] = Field(default_factory=list)
    text: str = Field(description="One short line for the person, in the locale.")
    steady: float = Field(ge=0, le=1, description="Progress towards a scan: 1 starts one.")
    quality: FrameQuality
    analysis_ms: float = Field(ge=0)


class LiveScan(_Event):
    """Connection-level (seq 0): the item was held steady; the scan ``scan_request_id`` of
    this frame starts (its ``scan.accepted`` … ``scan.done`` follow, logged as any scan's)."""

    type: Literal["live.scan"] = "live.scan"
    frame: int = Field(ge=0)
    scan_request_id: str


class LiveDropped(_Event):
    """Connection-level (seq 0): frames were dropped unseen, at most one notice a second."""

    type: Literal["live.dropped"] = "live.dropped"
    counts: dict[DropReason, int]
    max_fps: int
    max_frame_bytes: int
    message: str


class LiveStopped(_Event):
    """Connection-level (seq 0): live mode is off (``live.stop``, or no frame for a while)."""

    type: Literal["live.stopped"] = "live.stopped"
    reason: Literal["client", "idle"]
    frames: int = Field(ge=0, description="Frames received.")
    analysed: int = Field(ge=0)
    scans: int = Field(ge=0)


class Pong(_Event):
    """Connection-level (seq 0): the answer to ``ping``."""

    type: Literal["pong"] = "pong"


ServerEvent = Annotated[
    SessionReady
    | SessionExpiring
    | ScanAccepted
    | ScanClassified
    | CoachingDelta
    | CoachingDone
    | BinsSuggested
    | ScanDone
    | Error
    | Pong
    | ScanClarify
    | ChatDelta
    | ChatDone
    | AuthExpiring
    | AuthRefreshed
    | RateLimitsUpdated
    | LiveStarted
    | LiveHint
    | LiveScan
    | LiveDropped
    | LiveStopped,
    Field(discriminator="type"),
]
server_event_adapter: TypeAdapter[ServerEvent] = TypeAdapter(ServerEvent)

CLIENT_MESSAGES: tuple[type[BaseModel], ...] = (
    SessionStart,
    ScanStart,
    ScanCancel,
    Ping,
    ClarifyAnswer,
    ChatMessage,
    AuthRefresh,
    LiveStart,
    LiveStop,
)
SERVER_EVENTS: tuple[type[BaseModel], ...] = (
    SessionReady,
    SessionExpiring,
    ScanAccepted,
    ScanClassified,
    CoachingDelta,
    CoachingDone,
    BinsSuggested,
    ScanDone,
    Error,
    Pong,
    ScanClarify,
    ChatDelta,
    ChatDone,
    AuthExpiring,
    AuthRefreshed,
    RateLimitsUpdated,
    LiveStarted,
    LiveHint,
    LiveScan,
    LiveDropped,
    LiveStopped,
)


def event_payload(event: _Event) -> dict[str, Any]:
    """JSON-ready dict of an event without ``seq`` (the event log assigns it)."""
    return event.model_dump(mode="json", exclude={"seq"})
