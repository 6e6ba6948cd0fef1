"""The transport's own state: this process's open WebSocket connections, and draining them
when the server shuts down."""

from __future__ import annotations

import asyncio
from typing import Protocol

from server.pipeline.runner import ScanRunner


class _Connection(Protocol):
    closed: asyncio.Event

    def shutdown(self) -> None: ...

    def account_deleted(self, user_id: str) -> None: ...


class Connections:
    def __init__(self) -> None:
        self._open: set[_Connection] = set()
        #: Set once shutdown began: new connections are closed with 1012 at once.
        self.draining = False

    def __len__(self) -> int:
        return len(self._open)

    def add(self, connection: _Connection) -> None:
        self._open.add(connection)

    def discard(self, connection: _Connection) -> None:
        self._open.discard(connection)

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
        connections = list(self._open)
        for connection in connections:
            connection.shutdown()
        if connections:
            await asyncio.wait(
                [asyncio.ensure_future(c.closed.wait()) for c in connections], timeout=grace_s
            )
