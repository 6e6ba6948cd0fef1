"""The transport's own state: this process's open WebSocket connections, and draining them
when the server shuts down."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import Protocol

from server.metrics import WS_SESSIONS_OPEN
from server.pipeline.runner import ScanRunner


class _Connection(Protocol):
    def shutdown(self) -> None: ...

    def account_deleted(self, user_id: str) -> None: ...


class Connections:
    """Open connections, counted per client address (``None`` where the server cannot tell,
    a Unix socket), in total and before they signed in."""

    def __init__(self, *, per_address: int = 256, unauthenticated_per_address: int = 16) -> None:
        self._open: dict[_Connection, str | None] = {}
        self._per_address: collections.Counter[str] = collections.Counter()
        self._pending: set[_Connection] = set()
        self._pending_per_address: collections.Counter[str] = collections.Counter()
        self._max = per_address
        self._max_pending = unauthenticated_per_address
        #: Set once shutdown began: new connections are closed with 1012 at once.
        self.draining = False
        #: While draining: resolved when the last connection is discarded. (One future here,
        #: rather than an ``asyncio.Event`` per connection, about 1 KiB each, to wait on.)
        self._emptied: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._open)

    def add(self, connection: _Connection, address: str | None = None) -> bool:
        """Count a new (not yet signed-in) connection; False, counting nothing, when its
        address already holds as many as it may."""
        if address is not None and (
            self._per_address[address] >= self._max
            or self._pending_per_address[address] >= self._max_pending
        ):
            return False
        self._open[connection] = address
        WS_SESSIONS_OPEN.inc()
        self._pending.add(connection)
        if address is not None:
            self._per_address[address] += 1
            self._pending_per_address[address] += 1
        return True

    def signed_in(self, connection: _Connection) -> None:
        """The connection's ``session.start`` succeeded: it no longer counts as unsigned."""
        if connection in self._pending:
            self._pending.discard(connection)
            address = self._open.get(connection)
            if address is not None:
                _decrement(self._pending_per_address, address)

    def discard(self, connection: _Connection) -> None:
        self.signed_in(connection)
        if connection not in self._open:
            return
        address = self._open.pop(connection)
        WS_SESSIONS_OPEN.dec()
        if address is not None:
            _decrement(self._per_address, address)
        if not self._open and self._emptied is not None and not self._emptied.done():
            self._emptied.set_result(None)

    def account_deleted(self, user_id: str) -> None:
        """The account ``user_id`` was just deleted: its connections here close now (those in
        other processes at their next keep-alive, see ``server.auth.revocation``)."""
        for connection in list(self._open):
            connection.account_deleted(user_id)

    async def drain(self, runner: ScanRunner, grace_s: float = 10.0) -> None:
        """Close every connection with 1012 once its queued events are written."""
        self.draining = True
        # Jobs that run in this process die with it: give running ones a moment to finish.
        await runner.wait_idle(timeout=grace_s / 2)
        if not self._open:
            return
        self._emptied = asyncio.get_running_loop().create_future()
        for connection in list(self._open):
            connection.shutdown()
        # Connections opened meanwhile are closed with 1012 at once (see ``draining``).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await self._emptied


def _decrement(counter: collections.Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
