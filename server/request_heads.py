"""A deadline for every HTTP request head, and caps on the connections still sending one.

uvicorn waits for a request's head (request line and headers) without limit: a client that
connects and sends nothing, or trickles a header a byte at a time, holds its socket as long as
it likes (slow loris), and the per-address caps of ``server.ws.registry`` count only finished
WebSocket handshakes. Here a head must be complete within ``http.head_timeout_s`` of the
connection opening (a keep-alive connection's next request: of its first byte; the idle wait
before that is uvicorn's ``timeout_keep_alive``), or the connection gets 408 and is closed;
and a new connection gets 503 and is closed before anything is read when its address, or the
process, already holds as many connections with an unfinished request as it may. A request
stays unfinished until its body is in, which has a deadline of its own by its declared length
(``http.body_timeout_s`` plus the length at ``http.body_min_bytes_per_s``): a body trickled a
byte at a time holds a connection as a head would (R-U-Dead-Yet), and is cut the same way.

The address is the socket's peer: no header has been read yet, so ``X-Forwarded-For`` cannot
be. A peer in ``trusted_proxies`` speaks for many clients, so the per-address cap skips it
(behind a load balancer, the balancer's own limits are what bound one client); the total cap
still counts it.

It is uvicorn's httptools protocol (what ``http="auto"`` picks, httptools coming with
``uvicorn[standard]``) with four of its methods extended; the rest is uvicorn's.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.limits.address import address_key
from server.settings import HttpSettings

logger = logging.getLogger(__name__)


def _response(status: bytes, text: bytes, *extra: bytes) -> bytes:
    return b"\r\n".join([
        b"HTTP/1.1 " + status,
        b"content-type: text/plain; charset=utf-8",
        b"content-length: " + str(len(text)).encode(),
        b"connection: close",
        *extra,
        b"",
        text,
    ])


TIMED_OUT = _response(b"408 Request Timeout", b"request head not complete in time")
REFUSED = _response(b"503 Service Unavailable", b"too many unfinished requests",
                    b"retry-after: 1")


class ClientKeys:
    """What per-address caps count a peer under (:func:`server.limits.address_key`: an IPv6
    client by its /64), or None where they do not apply: no peer address (a Unix socket), or
    a trusted proxy, which speaks for many clients."""

    def __init__(self, trusted_proxies: str) -> None:
        items = [item for item in trusted_proxies.split(",") if item]
        self._trust_all = "*" in items
        self._trusted = [ipaddress.ip_network(item) for item in items if item != "*"]

    def key(self, host: str | None) -> str | None:
        if not host or self._trust_all:
            return None
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return address_key(host)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self._trusted):
            return None
        return address_key(host)


class UnfinishedHeads:
    """The connections whose current request head is not complete yet: per client address
    (:func:`server.limits.address_key`: an IPv6 client by its /64) and in all."""

    def __init__(self, settings: HttpSettings, trusted_proxies: str) -> None:
        self.timeout_s = settings.head_timeout_s
        self._body_timeout_s = settings.body_timeout_s
        self._body_min_rate = settings.body_min_bytes_per_s
        self._body_max = settings.body_max_bytes
        self._max_per_address = settings.max_unfinished_heads_per_address
        self._max = settings.max_unfinished_heads
        self._per_address: collections.Counter[str] = collections.Counter()
        self.count = 0
        self._keys = ClientKeys(trusted_proxies)
        self._key = self._keys.key

    def body_deadline_s(self, length: int | None) -> float:
        """How long a body of ``length`` bytes (None: not declared, chunked) may take to
        arrive: ``body_timeout_s``, plus its size at ``body_min_bytes_per_s``."""
        size = self._body_max if length is None else min(length, self._body_max)
        return self._body_timeout_s + size / self._body_min_rate

    def begin(self, host: str | None, *, admit: bool) -> bool:
        """Count a head from ``host`` as unfinished. With ``admit`` (a new connection), False,
        counting nothing, when the process or the address already has as many as it may; a
        keep-alive connection's next request is counted without asking (it was admitted)."""
        key = self._key(host)
        if admit and (self.count >= self._max or (
            key is not None and self._per_address[key] >= self._max_per_address
        )):
            return False
        self.count += 1
        if key is not None:
            self._per_address[key] += 1
        return True

    def end(self, host: str | None) -> None:
        """A head counted by :meth:`begin` is complete, or its connection is gone."""
        self.count -= 1
        key = self._key(host)
        if key is not None:
            self._per_address[key] -= 1
            if self._per_address[key] <= 0:
                del self._per_address[key]


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request head; see the module."""

    heads: ClassVar[UnfinishedHeads]
    _head_timer: asyncio.TimerHandle | None = None
    #: The head is in and the body is being received (its deadline runs).
    _in_body = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._begin_head(admit=True):
            logger.debug("too many unfinished request heads; refused %s", self.client)
            transport.write(REFUSED)
            transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # The first request's head was counted when the connection opened.
        if self._head_timer is None and not self.transport.is_closing():
            self._begin_head(admit=False)

    def on_headers_complete(self) -> None:
        # Before uvicorn's handling, which for a WebSocket hands the socket to another
        # protocol: nothing of this one may outlive the head.
        if self.parser.should_upgrade():
            self._end_head()
        elif self._head_timer is not None:
            # The body has a deadline of its own, by its declared length; the request is
            # still counted as unfinished until the body is in (slow body, R-U-Dead-Yet).
            self._head_timer.cancel()
            self._in_body = True
            self._head_timer = self.loop.call_later(
                self.heads.body_deadline_s(self._content_length()), self._head_timed_out
            )
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._end_head()
        super().on_message_complete()

    def _content_length(self) -> int | None:
        for name, value in self.headers:
            if name.lower() == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def _host(self) -> str | None:
        return self.client[0] if self.client else None

    def _begin_head(self, *, admit: bool) -> bool:
        if not self.heads.begin(self._host(), admit=admit):
            return False
        self._head_timer = self.loop.call_later(self.heads.timeout_s, self._head_timed_out)
        return True

    def _end_head(self) -> None:
        self._in_body = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
            self.heads.end(self._host())

    def _head_timed_out(self) -> None:
        in_body = self._in_body
        self._end_head()
        if self.transport.is_closing():
            return
        logger.debug("request not complete in time; closing %s", self.client)
        cycle = self.cycle
        if in_body:
            # The route may have answered already (without reading the body): 408 only when
            # nothing of a response went out.
            quiet = cycle is not None and not cycle.response_started
        else:
            # A pipelined request's response may still be going out; 408 on a quiet line.
            quiet = cycle is None or cycle.response_complete
        if quiet:
            self.transport.write(TIMED_OUT)
        self.transport.close()


def head_deadline_protocol(
    settings: HttpSettings, trusted_proxies: str
) -> type[HeadDeadlineProtocol]:
    """The protocol class for one server (``uvicorn.Config(http=...)``), with its own count."""
    counted = UnfinishedHeads(settings, trusted_proxies)

    class Protocol(HeadDeadlineProtocol):
        heads = counted

    return Protocol
