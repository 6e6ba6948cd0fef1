"""The requests of one authenticated coaching session: the business rules between the
WebSocket adapter (``server.ws.connection``) and the domains.

The adapter parses frames (through ``protocol.session``) and calls :class:`Session`:
:meth:`~Session.start_scan`, :meth:`~Session.cancel`, :meth:`~Session.answer_clarify`,
:meth:`~Session.start_chat`, :meth:`~Session.refresh_auth`. This module decides admission
(budgets, upload checks, request ids used once), writes the session's events to its log, and
hands jobs to the runner. It knows nothing of sockets: what it has to tell only this
connection (a budget, ``auth.refreshed``) goes through :class:`Port`.

Two rules hold whatever ends the connection:

* a scan is accepted and enqueued (a chat claimed and enqueued) as one step the caller's
  cancellation cannot split (:meth:`Session._guarded`), so an accepted scan always gets its
  end; :meth:`Session.settle` waits for such steps;
* an accepted scan that cannot run ends with a saved ``failed`` outcome and its ``scan.done``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from protocol.messages import (
    AuthRefresh,
    AuthRefreshed,
    Budget,
    ChatDone,
    ChatMessage,
    ClarifyAnswer,
    Error,
    ErrorCode,
    ErrorInfo,
    ImageRef,
    Locale,
    RateLimitsUpdated,
    ScanAccepted,
    ScanCancel,
    ScanDone,
    ScanStart,
    ScanStatus,
    UploadImage,
    event_payload,
)
from server.auth.revocation import ensure_account_exists, ensure_account_still_exists
from server.auth.tokens import Claims, TokenService
from server.db import Database, database_unavailable
from server.errors import AuthError, RateLimited, WasteCoachError
from server.events.base import (
    CHAT_DONE,
    AppendStatus,
    EventLog,
    accepted_key,
    done_key,
    request_key,
)
from server.events.redis import HubUnavailable
from server.limits import Kind, LimitStatus, RateLimiter
from server.pipeline.jobs import ChatJob, ScanJob
from server.pipeline.runner import ScanRunner
from server.scans import repository as scans
from server.uploads import service as uploads
from server.uploads.storage import Storage
from server.users.models import new_id

log = logging.getLogger(__name__)

#: Failures of the services a session leans on (Redis above all): the session cannot go on
#: without them; the adapter ends the connection with 1013 and the client resumes later.
UNAVAILABLE: tuple[type[BaseException], ...] = (RedisError, HubUnavailable, OSError, TimeoutError)
#: Most a closing connection waits for a scan it was accepting and enqueueing.
GUARD_WAIT_S = 20.0


class HistoryLost(Exception):
    """The session's event log no longer exists (expired, deleted, Redis restarted)."""


@dataclass(frozen=True, slots=True)
class SessionDeps:
    """What the session service uses, and nothing else."""

    log: EventLog
    db: Database
    storage: Storage
    runner: ScanRunner
    limiter: RateLimiter
    tokens: TokenService


class Port(Protocol):
    """The session's way back to its own connection."""

    def notify(self, event: BaseModel) -> None:
        """Send ``event`` to this connection only, unlogged (after what is queued)."""

    def release(self, request_id: str) -> None:
        """The request was refused or ended before it ran: free its slot in the state machine."""


async def verify(deps: SessionDeps, token: str) -> Claims:
    """The token's claims, if it is valid and its account still exists."""
    claims = deps.tokens.verify_access(token)
    await ensure_account_exists(deps.db, claims, when_unreachable="a session")
    return claims


class Session:
    def __init__(
        self, deps: SessionDeps, port: Port, *, session_id: str, claims: Claims, locale: Locale
    ) -> None:
        self._deps = deps
        self._port = port
        self.session_id = session_id
        self.claims = claims
        self.locale = locale
        #: Scans accepted through this connection: request id → scan id.
        self._scan_ids: dict[str, str] = {}
        #: The user's budgets as last seen (session start, then every hit).
        self._budgets: dict[Kind, LimitStatus] = {}
        self._guards: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ queries

    async def budgets(self) -> RateLimitsUpdated:
        """The user's budgets now (``rate_limits.updated`` at the session's start)."""
        for kind in ("scan", "chat"):
            self._budgets[kind] = await self._deps.limiter.peek(self.claims.user_id, kind)
        return RateLimitsUpdated(
            scans=_budget(self._budgets["scan"]), chats=_budget(self._budgets["chat"])
        )

    async def open_chats(self) -> set[str]:
        """Request ids of the session's questions claimed and not answered yet."""
        return await self._deps.log.open_chats(self.session_id)

    async def open_scans(self) -> set[str]:
        """Request ids of the session's scans with a scan.accepted and no scan.done yet (it
        may have been resumed, with scans started on an earlier connection)."""
        return set(await self._deps.log.open_scans(self.session_id))

    async def keep_alive(self) -> None:
        """Keep the session's log alive while connected. Raises :class:`HistoryLost` when it
        is gone, and :class:`AuthError` when the account was deleted (through any process)."""
        if not await self._deps.log.touch(self.session_id):
            raise HistoryLost
        await ensure_account_still_exists(self._deps.db, self.claims)

    async def settle(self, timeout: float = GUARD_WAIT_S) -> None:
        """Wait for scans being accepted and enqueued to finish that step."""
        if self._guards:
            await asyncio.wait(set(self._guards), timeout=timeout)

    # ------------------------------------------------------------------ requests

    async def start_scan(self, message: ScanStart) -> None:
        request_id = message.request_id
        # The limiter's round trip runs beside the checks and scan.accepted when the budget
        # has room to spare; only the enqueue waits for its answer. Otherwise it comes first.
        hit: asyncio.Task[LimitStatus] | None = None
        if self._budget_to_spare("scan"):
            hit = asyncio.create_task(self._hit("scan"))
            # Its failure is read by _settle, or not at all if the scan stops before that.
            hit.add_done_callback(lambda t: t.cancelled() or t.exception())
        elif not await self._within_budget("scan", request_id):
            return
        try:
            upload_key = await self._check_image(message.image)
        except WasteCoachError as exc:
            self._port.release(request_id)
            await _settle(hit)
            await self._error(request_id, exc)
            return
        await self._guarded(self._accept_scan(message, upload_key, hit))

    async def cancel(self, message: ScanCancel) -> None:
        request_id = message.request_id
        scan_id = await self._scan_id_of(request_id)
        if scan_id is None:
            await self._error(request_id, _unknown_scan(request_id))
            return
        done = ScanDone(request_id=request_id, scan_id=scan_id, status=ScanStatus.CANCELLED)
        seq = await self._append(event_payload(done), key=done_key(request_id))
        if seq == AppendStatus.DUPLICATE:
            await self._error(
                request_id,
                WasteCoachError(
                    f"scan {request_id!r} has already ended", code=ErrorCode.UNKNOWN_REQUEST
                ),
            )
        # Otherwise the pipeline sees the scan closed at its next event and records it.

    async def answer_clarify(self, message: ClarifyAnswer) -> None:
        if await self._scan_id_of(message.request_id) is None:
            await self._error(message.request_id, _unknown_scan(message.request_id))
            return
        await self._deps.log.put_answer(self.session_id, message.request_id, message.choice)

    async def start_chat(self, message: ChatMessage) -> None:
        if not await self._within_budget("chat", message.request_id):
            return
        # Claimed and enqueued as one step, like a scan: a claimed request id always gets
        # its answer or its error.
        await self._guarded(self._accept_chat(message))

    async def refresh_auth(self, message: AuthRefresh) -> None:
        try:
            claims = await verify(self._deps, message.token)
            if claims.user_id != self.claims.user_id:
                raise AuthError("the new token belongs to another user")
        except AuthError as exc:
            # The session keeps its current token until that one expires.
            await self._error(message.request_id, exc)
            return
        self.claims = claims
        self._port.notify(
            AuthRefreshed(
                request_id=message.request_id,
                expires_at=datetime.fromtimestamp(claims.expires_at, UTC),
            )
        )

    # ------------------------------------------------------------------ scans

    async def _accept_scan(
        self, message: ScanStart, upload_key: str | None, hit: asyncio.Task[LimitStatus] | None
    ) -> None:
        request_id = message.request_id
        scan_id = new_id()
        seq = await self._append(
            event_payload(ScanAccepted(request_id=request_id, scan_id=scan_id)),
            key=accepted_key(request_id),
        )
        if seq == AppendStatus.DUPLICATE and (
            await self._deps.log.open_scan(self.session_id, request_id) != scan_id
        ):  # (the key is ours when a retried append had run already: then it is accepted)
            await _settle(hit)
            self._port.release(request_id)
            await self._error(request_id, _used_twice(request_id))
            return
        self._scan_ids[request_id] = scan_id
        # From here on the scan has been accepted: every path ends in the enqueue or in a
        # scan.done, whatever fails.
        job = ScanJob(
            scan_id=scan_id,
            request_id=request_id,
            session_id=self.session_id,
            user_id=self.claims.user_id,
            locale=message.locale or self.locale,
            image=message.image,
            location=message.location,
            upload_key=upload_key,
            enqueued_at=time.time(),
        )
        try:
            status = await _settle(hit)
        except UNAVAILABLE:
            status = None  # the limiter is away; the budget last seen had room to spare
        if status is not None and not status.allowed:
            # Other sessions of this user spent the budget meanwhile (rare: it had room to
            # spare): the scan ends before it starts.
            error = _over_budget("scan", status)
            await self._end_scan(
                job, ErrorInfo(code=error.code, message=error.message, retryable=True)
            )
            return
        # Enqueued before the writer gets to send scan.accepted: every later event waits on
        # the job reaching a worker, and the writer sends while the enqueue awaits the broker.
        try:
            await self._deps.runner.submit(job)
        except Exception as exc:
            log.warning("could not enqueue scan %s: %s: %s", scan_id, type(exc).__name__, exc)
            await self._end_scan(
                job,
                ErrorInfo(code=ErrorCode.SERVICE_UNAVAILABLE,
                          message="could not start the scan; try again", retryable=True),
            )

    async def _end_scan(self, job: ScanJob, error: ErrorInfo) -> None:
        """End an accepted scan that will not run: its outcome (failed) is recorded like any
        scan's, so the scan id the client got has its row, then scan.done. The log may be
        failing too (Redis going down): keep trying for a while, since without this event the
        scan would never end for the client."""
        try:
            await asyncio.wait_for(
                scans.record_outcome(
                    self._deps.db, **job.columns(), status="failed", timings_ms={},
                    error=error.model_dump(mode="json"),
                ),
                GUARD_WAIT_S / 4,
            )
        except Exception as exc:  # the database is away too: the client still gets its end
            log.warning("could not record failed scan %s: %s", job.scan_id, type(exc).__name__)
        done = ScanDone(request_id=job.request_id, scan_id=job.scan_id,
                        status=ScanStatus.FAILED, error=error)
        delay = 0.1
        deadline = time.monotonic() + GUARD_WAIT_S / 2
        while True:
            try:
                await self._append(event_payload(done), key=done_key(job.request_id))
                return
            except UNAVAILABLE:
                if time.monotonic() + delay > deadline:
                    log.error("scan %s was accepted and could not be ended", job.scan_id)
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _scan_id_of(self, request_id: str) -> str | None:
        scan_id = self._scan_ids.get(request_id)
        if scan_id is not None:
            return scan_id
        # Started on an earlier connection of this session and still running.
        return await self._deps.log.open_scan(self.session_id, request_id)

    async def _check_image(self, image: ImageRef) -> str | None:
        """Authorise an upload key, verifying the upload on its first use (see
        :mod:`server.uploads.service`); returns it (``None`` for an inline image)."""
        if not isinstance(image, UploadImage):
            return None
        try:
            await uploads.prepare_for_scan(
                self._deps.db, self._deps.storage, user_id=self.claims.user_id, key=image.key
            )
        except (SQLAlchemyError, BotoCoreError, ClientError, OSError) as exc:
            if isinstance(exc, SQLAlchemyError) and not database_unavailable(exc):
                raise  # a query that can never work is a bug, not an outage
            # The database or the object store is away: this request fails, retryably; the
            # session (which does not need them) goes on.
            log.warning("could not check upload %s: %s", image.key, exc)
            error = WasteCoachError(
                "uploads cannot be checked right now; try again shortly",
                code=ErrorCode.SERVICE_UNAVAILABLE,
            )
            error.retryable = True
            raise error from exc
        return image.key

    # ------------------------------------------------------------------ chat

    async def _accept_chat(self, message: ChatMessage) -> None:
        request_id = message.request_id
        if not await self._deps.log.open_chat(self.session_id, request_id):
            self._port.release(request_id)
            await self._error(request_id, _used_twice(request_id))
            return
        job = ChatJob(
            request_id=request_id,
            session_id=self.session_id,
            user_id=self.claims.user_id,
            locale=message.locale or self.locale,
            text=message.text,
            scan_id=message.scan_id,
            location=message.location,
            enqueued_at=time.time(),
        )
        try:
            await self._deps.runner.submit_chat(job)
        except Exception as exc:
            # Claimed, so it ends as every question does: with its chat.done (which also
            # frees its slot, here and on a connection that resumes the session).
            log.warning("could not enqueue chat %s: %s: %s", request_id, type(exc).__name__,
                        exc)
            done = ChatDone(
                request_id=request_id, scan_id=message.scan_id, text="", backend="none",
                outcome="failed", fallback_reason="could not answer now; ask again",
            )
            await self._append(event_payload(done), key=request_key(request_id, CHAT_DONE))

    # ------------------------------------------------------------------ budgets

    async def _within_budget(self, kind: Kind, request_id: str) -> bool:
        """Count the request against the user's budget; refuse it when spent."""
        status = await self._hit(kind)
        if status.allowed:
            return True
        self._port.release(request_id)
        await self._error(request_id, _over_budget(kind, status))
        return False

    async def _hit(self, kind: Kind) -> LimitStatus:
        status = await self._deps.limiter.hit(self.claims.user_id, kind)
        self._budgets[kind] = status
        self._port.notify(_budget_event(kind, status))
        return status

    def _budget_to_spare(self, kind: Kind) -> bool:
        """Whether the budget last seen leaves room for this request and one more: then
        the limiter's answer is all but certain, and the scan need not wait for it."""
        seen = self._budgets.get(kind)
        return seen is not None and min(seen.remaining_minute, seen.remaining_day) >= 2

    # ------------------------------------------------------------------ the log

    async def _append(self, payload: dict[str, Any], *, key: str | None = None) -> int:
        seq = await self._deps.log.append(self.session_id, payload, key=key)
        if seq == AppendStatus.SESSION_GONE:
            raise HistoryLost
        return seq

    async def _error(self, request_id: str | None, exc: WasteCoachError) -> None:
        error = Error(
            request_id=request_id, code=exc.code, message=exc.message, retryable=exc.retryable
        )
        await self._append(event_payload(error))

    async def _guarded(self, step: Coroutine[Any, Any, None]) -> None:
        """Run ``step`` to its end even if the caller is cancelled meanwhile (the reader is
        cancelled at shutdown, the peer goes away): a scan.accepted is always followed by the
        enqueue or by a scan.done. :meth:`settle` waits for guarded steps."""
        task: asyncio.Task[None] = asyncio.ensure_future(step)
        self._guards.add(task)
        task.add_done_callback(self._guards.discard)
        task.add_done_callback(_log_failure)
        await asyncio.shield(task)


async def _settle(hit: asyncio.Task[LimitStatus] | None) -> LimitStatus | None:
    """The limiter's answer to a hit that ran beside the scan's checks."""
    if hit is None:
        return None
    return await hit


def _log_failure(task: asyncio.Task[None]) -> None:
    """A guarded step that failed after its connection ended has nobody left to tell."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, (HistoryLost, *UNAVAILABLE)):
        log.error("a scan's start failed", exc_info=exc)


def _unknown_scan(request_id: str) -> WasteCoachError:
    return WasteCoachError(
        f"no scan with request_id {request_id!r} in this session", code=ErrorCode.UNKNOWN_REQUEST
    )


def _used_twice(request_id: str) -> WasteCoachError:
    return WasteCoachError(
        f"request_id {request_id!r} was already used in this session",
        code=ErrorCode.DUPLICATE_REQUEST,
    )


def _budget(status: LimitStatus) -> Budget:
    return Budget(
        limit_minute=status.limit_minute,
        remaining_minute=status.remaining_minute,
        limit_day=status.limit_day,
        remaining_day=status.remaining_day,
        reset_s=status.reset_s,
    )


def _over_budget(kind: Kind, status: LimitStatus) -> WasteCoachError:
    what = "scans" if kind == "scan" else "questions"
    return RateLimited(
        f"too many {what}; try again in {status.reset_s} s", retry_after_s=status.reset_s
    )


def _budget_event(kind: Kind, status: LimitStatus) -> RateLimitsUpdated:
    if kind == "scan":
        return RateLimitsUpdated(scans=_budget(status))
    return RateLimitsUpdated(chats=_budget(status))
