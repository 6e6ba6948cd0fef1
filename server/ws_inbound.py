"""A budget of bytes that unfinished WebSocket messages may hold, per client address and in all.

The WebSocket layer (uvicorn's, on the ``websockets`` library) buffers a frame until it is
whole, up to the message limit (``protocol.messages.MAX_FRAME_BYTES``, 1.6 MiB), before our
code sees any of it. One socket may hold that much; an address with many signed-in sockets (up
to ``session.max_connections_per_address``) could hold hundreds of MiB by sending every frame
but its last byte. Here the bytes each socket holds in unfinished input (the reader's buffer
and the fragments of a message being assembled) are counted after every read, per client
address (the socket's peer, an IPv6 client by its /64, as ``server.request_heads`` counts it)
and in all; the socket that takes its address, or the process, over the budget is closed with
1008 at once. Whole messages are not counted: uvicorn stops reading a socket until the app has
taken its last message, and the session takes each at once.

It is uvicorn's sans-I/O WebSocket protocol (what ``ws="auto"`` picks with ``websockets``
installed) with two of its methods extended. It also keeps an idle connection smaller (the
idle-session figures in ``docs/benchmarks.md``): its queue of ASGI events holds nothing while
empty, its ``writable`` flag is an ``asyncio.Event`` only while the transport is paused, and the
handshake's headers go once the scope is built, its response once the accept is sent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from server.request_heads import ClientKeys
from server.settings import HttpSettings
from server.ws.outbox import Outbox

logger = logging.getLogger(__name__)

#: The close code and reason of a socket over the budget (policy violation: do not retry blindly).
CLOSE_CODE = 1008
CLOSE_REASON = "too much unfinished input from your address"


class InboundBudget:
    def __init__(self, settings: HttpSettings, trusted_proxies: str) -> None:
        self._keys = ClientKeys(trusted_proxies)
        self._max_per_address = settings.max_unread_bytes_per_address
        self._max = settings.max_unread_bytes
        self._per_address: dict[str, int] = {}
        self.total = 0

    def key(self, host: str | None) -> str | None:
        return self._keys.key(host)

    def change(self, key: str | None, delta: int) -> bool:
        """Add ``delta`` bytes held by a socket of ``key``; False when that takes the address
        or the process over its budget (the change is counted either way)."""
        self.total += delta
        if key is None:
            return self.total <= self._max
        held = self._per_address.get(key, 0) + delta
        if held > 0:
            self._per_address[key] = held
        else:
            self._per_address.pop(key, None)
        return self.total <= self._max and held <= self._max_per_address

    def held(self, key: str | None) -> int:
        return self._per_address.get(key, 0) if key is not None else 0


#: More ASGI events than uvicorn ever queues for one connection (one message, then a close).
_EVENTS_BOUND = 1 << 16


class _Writable:
    """uvicorn's ``writable`` while the transport takes writes: a set ``asyncio.Event`` that
    nobody waits on. uvicorn awaits ``writable.wait()`` before every send and clears and sets
    it as the transport pauses and resumes; an ``asyncio.Event`` per socket keeps a deque of
    waiters from the start (about 0.6 KiB per idle connection on CPython 3.11). One shared,
    stateless instance stands for "writable"; a real Event is made only while paused."""

    __slots__ = ()

    def is_set(self) -> bool:
        return True

    def set(self) -> None:
        pass

    async def wait(self) -> bool:
        return True


_WRITABLE = _Writable()


class BudgetedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, counting what each socket holds unfinished."""

    budget: ClassVar[InboundBudget]
    _held = 0
    _key: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's queue of ASGI events for the app: an asyncio.Queue, three deques and an
        # Event from the start (about 3.7 KiB per idle connection on CPython 3.11). uvicorn
        # only puts, gets and asks whether it is empty, and the app has one reader (the
        # connection's), so the outbox that holds a deque only while it has items serves.
        # Unbounded in effect, as uvicorn's is: it stops reading the socket after each message
        # until the app has taken it, so a few events at most wait here.
        self.queue = Outbox(_EVENTS_BOUND)  # type: ignore[assignment]
        self.writable = _WRITABLE  # type: ignore[assignment]

    def pause_writing(self) -> None:
        if isinstance(self.writable, _Writable):
            self.writable = asyncio.Event()  # made cleared: sends wait on it
        else:  # pragma: no cover - asyncio pauses a protocol once until it resumes it
            self.writable.clear()

    def resume_writing(self) -> None:
        # Wakes the sends waiting on the paused Event; they hold it, not this attribute.
        self.writable.set()
        self.writable = _WRITABLE  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.budget.change(self._key, -self._held)
        self._held = 0
        super().connection_lost(exc)  # sets writable: a send waiting on it sees the loss
        self.writable = _WRITABLE  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The scope now holds the headers (as bytes; uvicorn reads the request for nothing
        # else). The parsed request stays referenced by websockets' parser, a generator that
        # lives as long as the socket and keeps the request in its frame (``request`` in
        # ``ServerProtocol.parse``): emptying its headers frees that second copy, about 2 KiB
        # per idle connection.
        event.headers.clear()

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if self.handshake_complete and getattr(self, "response", None) is not None:
            # The handshake's response (its headers parsed into websockets' Headers) is not
            # read once the accept has gone out: uvicorn reads it only before, for the accept.
            self.request = self.response = None  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._key is None and self.client:
            self._key = self.budget.key(self.client[0])
        super().data_received(data)
        if not self.transport.is_closing():
            self._recount()

    def _recount(self) -> None:
        held = len(self.conn.reader.buffer) + sum(len(part) for part in self.frames)
        delta, self._held = held - self._held, held
        if delta and not self.budget.change(self._key, delta):
            logger.info("closing a WebSocket of %s: %s", self.client, CLOSE_REASON)
            self.budget.change(self._key, -self._held)
            self._held = 0
            self.conn.fail(CLOSE_CODE, CLOSE_REASON)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()


def budgeted_websocket_protocol(
    settings: HttpSettings, trusted_proxies: str
) -> type[BudgetedWebSocketProtocol]:
    """The protocol class for one server (``uvicorn.Config(ws=...)``), with its own budget."""
    counted = InboundBudget(settings, trusted_proxies)

    class Protocol(BudgetedWebSocketProtocol):
        budget = counted

    return Protocol
