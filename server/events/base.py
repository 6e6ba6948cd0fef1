"""Interface of the session event log, shared by the Redis and in-memory implementations."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any, NamedTuple, Protocol


class Event(NamedTuple):
    """One event for a subscriber: its seq in the session's log (0 for an event sent to one
    connection only and never logged) and its JSON text, with the seq spliced in."""

    seq: int
    text: str


class Signal(Enum):
    """What a subscriber may receive instead of an event."""

    RESYNC = "resync"  # the subscription was re-established: catch up from the log
    LOST = "lost"  # the session's history no longer exists (expired or deleted while in use)


Delivery = Event | Signal
#: A subscriber: called for every event of its session, in the order they were appended
#: (an event may come twice, once at its append in this process and once through pub/sub;
#: the subscriber drops what it has by seq).
Deliver = Callable[[Delivery], None]

RESYNC = Signal.RESYNC
LOST = Signal.LOST
#: Published on a session's channel when an append finds its log gone; never valid JSON.
HISTORY_LOST_MARK = "!lost"


def request_key(request_id: str, step: str) -> str:
    """The idempotency key of one step of a request (``scan.accepted``, a coaching delta…):
    an event appended twice under the same key is stored once."""
    return f"{request_id}:{step}"


#: The step of a question's ``chat.done``. A question is not scoped (its events are not refused
#: after it): its end only closes it among the open questions (:meth:`EventLog.open_chats`).
CHAT_DONE = "chat:done"


def accepted_key(request_id: str) -> str:
    """The key of a request's acceptance (``scan.accepted``, or a chat's claim)."""
    return request_key(request_id, "accepted")


#: The step of a scan's ``scan.done`` (see :func:`done_key`).
DONE = "done"


def done_key(request_id: str) -> str:
    """The key of a scan's ``scan.done``. An append under it closes the scan: from then on
    the log refuses every append scoped to that request (:data:`AppendStatus.SCAN_CLOSED`)."""
    return request_key(request_id, DONE)


class AppendStatus(IntEnum):
    """Why an append wrote nothing (a positive result is the assigned seq)."""

    SCAN_CLOSED = -1  # the scan already has its scan.done: it was cancelled or finished
    DUPLICATE = -2  # an event with this idempotency key exists (task redelivered)
    SESSION_GONE = -3  # the session expired; its log no longer exists


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session_id: str
    user_id: str
    epoch: str
    head: int


class Subscription(Protocol):
    async def close(self) -> None: ...


class EventLog(Protocol):
    """A session's ordered, replayable events. Subscribers in this process get an event
    appended in this process at once, during ``append``; events appended elsewhere (a worker)
    reach them through pub/sub."""

    async def create_session(self, session_id: str, user_id: str) -> SessionInfo: ...

    async def get_session(self, session_id: str) -> SessionInfo | None: ...

    async def touch(self, session_id: str) -> bool:
        """Keep an idle but connected session's log alive; False when it no longer exists."""

    async def open_scans(self, session_id: str) -> dict[str, str]:
        """The session's scans that have a ``scan.accepted`` and no ``scan.done`` yet, as
        request id → scan id. Kept beside the log, updated by the same atomic append, so it
        holds however long the log has grown or been trimmed."""

    async def open_scan(self, session_id: str, request_id: str) -> str | None:
        """The scan id of one open scan of the session, or ``None``."""

    async def append(
        self,
        session_id: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        scope: str | None = None,
    ) -> int:
        """Append one event and publish it. Returns its seq, or an :class:`AppendStatus`.

        ``key`` makes the append idempotent (build it with :func:`request_key`); ``scope`` (a
        request id) refuses the append when that scan already ended (its :func:`done_key`
        exists).
        """

    async def append_many(
        self,
        session_id: str,
        events: Sequence[tuple[dict[str, Any], str | None]],
        *,
        scope: str | None = None,
    ) -> list[int]:
        """Append ``(payload, key)`` events in order, atomically and in one round trip;
        one result per event, as :meth:`append` would give."""

    async def read_since(self, session_id: str, after_seq: int) -> list[tuple[int, str]] | None:
        """Events with seq > ``after_seq``, oldest first; ``None`` when some were lost."""

    async def open_chat(self, session_id: str, request_id: str) -> bool:
        """Claim a question's request id (its :func:`accepted_key`, with no event) and count
        it open until its ``chat.done`` is appended; False if the id was taken, or the
        session is gone."""

    async def open_chats(self, session_id: str) -> set[str]:
        """Request ids of the session's questions claimed and not answered yet (a resumed
        connection counts them against its cap, as it counts open scans)."""

    async def lease(
        self, session_id: str, request_id: str, owner: str, ttl_s: float
    ) -> bool:
        """Take (or, for the same ``owner``, renew) the right to run a request for ``ttl_s``
        seconds; False while another owner holds it. Keeps two runs of one job (a redelivery
        while the first still runs) from interleaving their output."""

    async def release(self, session_id: str, request_id: str, owner: str) -> None:
        """Give a lease back, if ``owner`` still holds it."""

    async def put_answer(self, session_id: str, request_id: str, answer: str) -> None:
        """Hand a client's answer (to ``scan.clarify``) to whichever process runs the scan."""

    async def wait_answer(self, session_id: str, request_id: str, timeout: float) -> str | None:
        """The next answer for ``request_id``, or ``None`` after ``timeout`` seconds."""

    async def subscribe(self, session_id: str, deliver: Deliver) -> Subscription: ...

    async def close(self) -> None: ...


def encode_payload(payload: dict[str, Any]) -> str:
    """Serialise a payload so that ``{"seq":N,`` can be spliced in front without re-parsing."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    if text == "{}" or not text.startswith("{"):
        raise ValueError("an event payload is a non-empty JSON object")
    return text


def with_seq(seq: int, payload_json: str) -> str:
    return '{"seq":' + str(seq) + "," + payload_json[1:]


def seq_of(event_json: str) -> int:
    """Read the seq spliced in by :func:`with_seq` without parsing the whole event."""
    end = event_json.index(",", 7)
    return int(event_json[7:end])
