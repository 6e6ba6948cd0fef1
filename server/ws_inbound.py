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
empty, and the handshake's request and response go once the accept is sent.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

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

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if self.handshake_complete and getattr(self, "response", None) is not None:
            # The handshake's request and response, their headers parsed into websockets'
            # Headers (about 3 KiB an idle connection kept), are not read once the accept
            # has gone out: uvicorn reads them only before (handle_connect, the accept).
            self.request = self.response = None  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._key is None and self.client:
            self._key = self.budget.key(self.client[0])
        super().data_received(data)
        if not self.transport.is_closing():
            self._recount()

    def connection_lost(self, exc: Exception | None) -> None:
        self.budget.change(self._key, -self._held)
        self._held = 0
        super().connection_lost(exc)

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
