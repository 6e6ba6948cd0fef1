"""Appends one request's events to the session's event log, in order, without making the stage
that produces them wait on each append.

``emit`` queues the event and returns. One drain task per request appends what is queued: the
first event at once, and every event emitted while an append is in flight in the next batch
(one round trip for a burst of coaching tokens, as group commit does for a database). The
order of events is the order of ``emit`` calls. ``flush`` waits until everything queued is in
the log; the request's last event goes through :meth:`EventEmitter.finish`, which appends it
with whatever is still queued in one round trip.

Each event carries an idempotency key derived from the request id, so a task that runs twice
(a worker crashed, the broker redelivered the job) appends nothing twice; and the log refuses a
scan's events once its ``scan.done`` exists (cancelled), which the emitter reports by raising
:class:`RequestClosed` from the next ``emit`` or ``flush``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from protocol.messages import event_payload
from server.events.base import AppendStatus, EventLog

log = logging.getLogger(__name__)

#: Events appended per round trip at most.
MAX_BATCH = 64
#: Queued events at which ``emit`` waits for the log (a producer far faster than Redis).
HIGH_WATER = 256


class RequestClosed(Exception):
    """The request already has its final event (the scan was cancelled); stop quietly."""


class EventEmitter:
    def __init__(
        self, event_log: EventLog, session_id: str, request_id: str, *, scoped: bool = True
    ) -> None:
        self._log = event_log
        self._session_id = session_id
        self._request_id = request_id
        self._scope = request_id if scoped else None
        self._queue: list[tuple[dict[str, Any], str | None]] = []
        self._drain: asyncio.Task[None] | None = None
        self._closed = False
        self._failure: BaseException | None = None
        self.session_gone = False

    async def emit(self, event: Any, key: str) -> None:
        self._check()
        self._queue.append((event_payload(event), f"{self._request_id}:{key}"))
        if self._drain is None:
            self._drain = asyncio.create_task(self._run(), name=f"emit-{self._request_id}")
        if len(self._queue) >= HIGH_WATER:
            await self.flush()

    async def flush(self) -> None:
        """Wait until every queued event is in the log."""
        await self._drained()
        self._check()

    async def finish(
        self, event: Any, key: str = "done", *, after: Sequence[tuple[Any, str]] = ()
    ) -> int:
        """Append the request's final event after all the others, whatever their fate, in the
        same round trip as what is still queued and as ``after`` (events the caller held back
        until now, such as ``bins.suggested`` until the outcome was saved). Returns the final
        event's seq, or the :class:`AppendStatus` that kept it out (the request was closed)."""
        await self._drained()
        if self._failure is not None:
            raise self._failure
        batch = [] if self._closed else self._queue
        self._queue = []
        batch += [(event_payload(e), f"{self._request_id}:{k}") for e, k in after]
        batch.append((event_payload(event), f"{self._request_id}:{key}"))
        results = await self._log.append_many(self._session_id, batch, scope=self._scope)
        return results[-1]

    async def aclose(self) -> None:
        """Stop appending (the request is over or was abandoned); drop what is queued."""
        self._queue.clear()
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._drain

    async def _drained(self) -> None:
        while self._drain is not None:
            await asyncio.shield(self._drain)

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise RequestClosed

    async def _run(self) -> None:
        try:
            while self._queue and not self._closed:
                batch = self._queue[:MAX_BATCH]
                del self._queue[: len(batch)]
                results = await self._log.append_many(self._session_id, batch, scope=self._scope)
                for result in results:
                    if result == AppendStatus.SCAN_CLOSED:
                        self._closed = True
                        self._queue.clear()
                    elif result == AppendStatus.SESSION_GONE and not self.session_gone:
                        # Nobody can receive events any more; the work goes on and is recorded.
                        self.session_gone = True
                        log.info("session %s is gone; request %s continues silently",
                                 self._session_id, self._request_id)
        except Exception as exc:  # the log is unreachable: the producer learns at its next emit
            self._failure = exc
            self._queue.clear()
        finally:
            self._drain = None
