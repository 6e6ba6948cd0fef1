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

Redis goes away now and then (a restart, a failover, a network blip). Because appends are
idempotent by key, a batch whose round trip failed is simply sent again: events the first try
did write come back as DUPLICATE, which counts as written. Every append retries with backoff
for up to ``APPEND_PATIENCE_S`` (as the outcome's database write does); only then does the
producer learn of the failure. The final event is always attempted, failure or not, and if it
still cannot be written :meth:`EventEmitter.finish` raises :class:`EventsNotDelivered`: a
worker must then leave the job unacknowledged so that the broker runs it again (the rerun
appends what is missing and nothing twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from protocol.messages import event_payload
from server.events.base import DONE, AppendStatus, EventLog, request_key

log = logging.getLogger(__name__)

#: Events appended per round trip at most.
MAX_BATCH = 64
#: Queued events at which ``emit`` waits for the log (a producer far faster than Redis).
HIGH_WATER = 256
#: How long one append keeps retrying while the log is unreachable (a Redis restart or
#: failover takes seconds; the database write of the outcome waits as long).
APPEND_PATIENCE_S = 30.0
_FIRST_DELAY_S = 0.05
_MAX_DELAY_S = 2.0
#: Failures that say "the log is unreachable now", not "this request is wrong". redis-py's
#: ConnectionError and TimeoutError are not the builtin ones; OSError covers those.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError, RedisTimeoutError, OSError,
)


class RequestClosed(Exception):
    """The request already has its final event (the scan was cancelled); stop quietly."""


class RunLater(Exception):
    """The job must run again later: its message goes back to the queue, unacknowledged."""


class EventsNotDelivered(RunLater):
    """The request's final event could not be appended: the log stayed unreachable for longer
    than the emitter's patience. The job must run again (not be acknowledged)."""


class AlreadyRunning(RunLater):
    """Another run of the same job holds its lease (the broker redelivered it while the first
    still runs, after a lost connection): this copy waits its turn in the queue, and then
    finds the scan ended and appends nothing."""


class EventEmitter:
    def __init__(
        self,
        event_log: EventLog,
        session_id: str,
        request_id: str,
        *,
        scoped: bool = True,
        patience_s: float = APPEND_PATIENCE_S,
    ) -> None:
        self._log = event_log
        self._session_id = session_id
        self._request_id = request_id
        self._scope = request_id if scoped else None
        self._queue: list[tuple[dict[str, Any], str | None]] = []
        self._drain: asyncio.Task[None] | None = None
        self._closed = False
        self._failure: BaseException | None = None
        self._patience_s = patience_s
        self.session_gone = False

    async def emit(self, event: Any, key: str) -> None:
        self._check()
        self._queue.append((event_payload(event), request_key(self._request_id, key)))
        if self._drain is None:
            self._drain = asyncio.create_task(self._run(), name=f"emit-{self._request_id}")
        if len(self._queue) >= HIGH_WATER:
            await self.flush()

    async def flush(self) -> None:
        """Wait until every queued event is in the log."""
        await self._drained()
        self._check()

    async def finish(
        self, event: Any, key: str = DONE, *, after: Sequence[tuple[Any, str]] = ()
    ) -> int:
        """Append the request's final event after all the others, whatever their fate, in the
        same round trip as what is still queued and as ``after`` (events the caller held back
        until now, such as ``bins.suggested`` until the outcome was saved). Returns the final
        event's seq, or the :class:`AppendStatus` that kept it out (the request was closed).

        Always attempted, even after an earlier append failed (what that append carried is
        still queued and goes first). Raises :class:`EventsNotDelivered` when the log stayed
        unreachable through every retry."""
        await self._drained()
        batch = [] if self._closed else self._queue
        self._queue = []
        batch += [(event_payload(e), f"{self._request_id}:{k}") for e, k in after]
        batch.append((event_payload(event), request_key(self._request_id, key)))
        try:
            results = await self._append(batch)
        except TRANSIENT_ERRORS as exc:
            raise EventsNotDelivered(
                f"the final event of request {self._request_id} could not be appended ({exc})"
            ) from exc
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
                try:
                    results = await self._append(batch)
                except Exception:
                    # Not written: keep it, in order, for finish() to carry with the final event.
                    self._queue[:0] = batch
                    raise
                self._note(results)
        except TRANSIENT_ERRORS as exc:
            # The log stayed unreachable: the producer learns at its next emit, as a failure
            # of delivery (run the job again), not of the request.
            failure = EventsNotDelivered(
                f"events of request {self._request_id} could not be appended ({exc})"
            )
            failure.__cause__ = exc
            self._failure = failure
        except Exception as exc:  # anything else is a bug; the producer learns all the same
            self._failure = exc
        finally:
            self._drain = None

    def _note(self, results: list[int]) -> None:
        for result in results:
            if result == AppendStatus.SCAN_CLOSED:
                self._closed = True
                self._queue.clear()
            elif result == AppendStatus.SESSION_GONE and not self.session_gone:
                # Nobody can receive events any more; the work goes on and is recorded.
                self.session_gone = True
                log.info("session %s is gone; request %s continues silently",
                         self._session_id, self._request_id)

    async def _append(self, batch: list[tuple[dict[str, Any], str | None]]) -> list[int]:
        """``append_many`` retried with backoff while the log is unreachable, for up to the
        emitter's patience. A retry of a batch that was in fact written is harmless: each
        event has its key, and keys already in the log come back as DUPLICATE."""
        delay = _FIRST_DELAY_S
        deadline = time.monotonic() + self._patience_s
        failing = False
        while True:
            try:
                results = await self._log.append_many(self._session_id, batch, scope=self._scope)
            except TRANSIENT_ERRORS as exc:
                if time.monotonic() + delay > deadline:
                    log.error("request %s: the event log is still unreachable (%s); giving up",
                              self._request_id, exc)
                    raise
                if not failing:  # once per outage, not once per attempt
                    failing = True
                    log.warning("request %s: the event log is unreachable (%s); retrying for "
                                "up to %.0f s", self._request_id, exc, self._patience_s)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY_S)
                continue
            if failing:
                log.info("request %s: the event log is back", self._request_id)
            return results
