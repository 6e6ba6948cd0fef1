"""One coaching WebSocket connection: a thin I/O adapter around ``protocol.session``.

Three tasks run together in a TaskGroup:

* the reader feeds frames to the state machine and performs its actions (it is always inside
  ``receive()``, so a dead peer is noticed at once: starlette #1793);
* the writer drains a bounded queue into the socket, in ``seq`` order, filling any gap from the
  session's event log and dropping duplicates;
* the supervisor ends the connection at its lifetime cap (after a ``session.expiring``
  warning), when the client is too slow, or when the server shuts down.

Slow-client policy: a client is too slow when the session's head seq runs more than
``session.max_unsent_events`` ahead of the last event written to its socket, or when the send
queue (``session.send_queue_size``) fills. It is then closed with 1013; nothing is lost, because
the client resumes with its last seq and the log replays what it missed. The measure is what the
client has not taken, not what it was sent: the server's listening socket has a small
``SO_SNDBUF`` (see ``server.cli``) and the WebSocket layer waits for the transport to drain, so
a client that stops reading blocks the writer after about 200 KiB (the send buffer, doubled by
Linux, plus the transport's 64 KiB) instead of the kernel absorbing megabytes, and it is closed
before its history is trimmed away. Coalescing
deltas would lose the per-event contract and dropping would lose data, so closing is the honest
choice.

Faults: when Redis (the event log, the hub, the limiter) fails under a connection, the client
gets a ``service_unavailable`` error where it can still be sent and a 1013 close, and resumes
later; a database failure fails only the request that needed it. A scan is accepted and
enqueued as one step that the connection's end cannot split (:meth:`Connection._guarded`), so
an accepted scan always gets its end. When the session's history is gone under the connection
(expired, deleted, Redis restarted) it closes with 1011, and the client starts a new epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.websockets import WebSocket, WebSocketState

from protocol.messages import (
    AuthExpiring,
    AuthRefresh,
    AuthRefreshed,
    Budget,
    ChatMessage,
    ClarifyAnswer,
    Error,
    ErrorCode,
    ErrorInfo,
    ImageRef,
    RateLimitsUpdated,
    ScanAccepted,
    ScanCancel,
    ScanDone,
    ScanStart,
    ScanStatus,
    SessionExpiring,
    SessionReady,
    SessionStart,
    UploadImage,
    event_payload,
)
from protocol.session import (
    Action,
    AnswerClarify,
    Authenticate,
    CancelScan,
    Close,
    CloseCode,
    RefreshAuth,
    SendEvent,
    SessionMachine,
    StartChat,
    StartScan,
)
from server.auth.revocation import ACCOUNT_GONE, ensure_account_exists
from server.auth.tokens import Claims
from server.db import database_unavailable
from server.errors import AuthError, NotFound, WasteCoachError
from server.events.base import (
    LOST,
    RESYNC,
    AppendStatus,
    Subscription,
    encode_payload,
    with_seq,
)
from server.events.redis import HubUnavailable
from server.limits import Kind, LimitStatus
from server.pipeline.chat import ChatJob
from server.pipeline.run import ScanJob, job_columns
from server.scans import repository as scans
from server.services import Services
from server.uploads import service as uploads
from server.users.models import new_id

log = logging.getLogger(__name__)

#: Queued after the last event to flush on shutdown (distinct from every Signal and status).
_SHUTDOWN = -200

#: Failures of the services a connection leans on (Redis above all): the connection cannot go
#: on without them, so it ends with 1013 and the client resumes once they are back.
_UNAVAILABLE: tuple[type[BaseException], ...] = (RedisError, HubUnavailable, OSError, TimeoutError)
#: Most a connection waits, when it ends, for a scan it was accepting and enqueueing.
_GUARD_WAIT_S = 20.0
_HISTORY_LOST = "event history lost; reconnect to start a new epoch"
#: A client is stalled when no event could be written to it for this long.
_STALL_S = 1.0
#: How long a 1013 close may wait to be written (it queues behind unread events).
_SLOW_CLOSE_WAIT_S = 15.0


class _CloseConnection(Exception):
    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Connection:
    def __init__(self, websocket: WebSocket, services: Services) -> None:
        self.ws = websocket
        self.services = services
        self.settings = services.settings.session
        self.machine = SessionMachine(
            max_concurrent_scans=self.settings.max_concurrent_scans,
            max_concurrent_chats=self.settings.max_concurrent_chats,
        )
        self.queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue(self.settings.send_queue_size)
        self.closed = asyncio.Event()
        self._slow = asyncio.Event()
        self._lost = asyncio.Event()
        #: Highest seq delivered to this connection, and the last one written to its socket.
        self._head = 0
        self._written = 0
        self._guards: set[asyncio.Task[Any]] = set()
        self._reader_task: asyncio.Task[None] | None = None
        self._progress_at = time.monotonic()
        self._draining = False
        self._auth_changed = asyncio.Event()
        #: Set when the account was deleted through this process: the supervisor closes.
        self._account_gone = asyncio.Event()
        self._subscription: Subscription | None = None
        self._claims: Claims | None = None
        self._start: SessionStart | None = None
        self._scan_ids: dict[str, str] = {}
        #: The user's budgets as last seen (session start, then every hit).
        self._budgets: dict[Kind, LimitStatus] = {}

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        await self.ws.accept()
        self.services.connections.add(self)
        try:
            if self.services.draining:
                raise _CloseConnection(CloseCode.SERVICE_RESTART, "server is restarting")
            await self._handshake()
            async with asyncio.TaskGroup() as group:
                self._reader_task = group.create_task(self._reader(), name="ws-reader")
                group.create_task(self._writer(), name="ws-writer")
                group.create_task(self._supervisor(), name="ws-supervisor")
        except* _CloseConnection as group:
            exc = group.exceptions[0]
            assert isinstance(exc, _CloseConnection)
            await self._close(exc.code, exc.reason)
        except* _UNAVAILABLE as group:
            await self._unavailable(group.exceptions[0])
        except* _Disconnected:
            pass
        except* Exception as group:  # a bug: log it, and let the client resume
            log.error("connection failed", exc_info=group)
            await self._close(CloseCode.INTERNAL_ERROR, "internal error; reconnect and resume")
        finally:
            if self._guards:
                # A scan being accepted and enqueued finishes that step, whatever ended us.
                await asyncio.wait(set(self._guards), timeout=_GUARD_WAIT_S)
            self.machine.closed()
            if self._subscription is not None:
                await self._subscription.close()
            self.services.connections.discard(self)
            self.closed.set()

    def shutdown(self) -> None:
        """Server shutdown: stop reading the client (no new request is taken), flush what is
        queued, then close with 1012."""
        self._draining = True
        if self._reader_task is not None:
            # A scan being accepted is guarded (see _guarded) and completes regardless.
            self._reader_task.cancel()
        try:
            self.queue.put_nowait((_SHUTDOWN, ""))
        except asyncio.QueueFull:
            self._slow.set()

    async def _unavailable(self, exc: BaseException) -> None:
        """A service the connection needs failed: say so where possible, close with 1013."""
        log.info("closing a connection: %s (%s)", type(exc).__name__, exc)
        if self.ws.application_state is WebSocketState.CONNECTED:
            notice = Error(
                code=ErrorCode.SERVICE_UNAVAILABLE,
                message="the service is briefly unavailable; reconnect and resume",
                retryable=True,
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.send_text(notice.model_dump_json()), 1)
        await self._close(CloseCode.TRY_AGAIN_LATER, "service unavailable; reconnect and resume")

    async def _close(self, code: CloseCode, reason: str) -> None:
        # A slow client's close frame waits behind what its socket already holds: it gets
        # longer, so that a client that reads again soon sees 1013 rather than a reset.
        wait = _SLOW_CLOSE_WAIT_S if code is CloseCode.TRY_AGAIN_LATER else 2.0
        if self.ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(code=int(code), reason=reason[:120]), wait)

    # ------------------------------------------------------------------ socket I/O

    async def _receive(self, timeout: float) -> str | None:
        """One text frame (``None`` for a binary one)."""
        try:
            message = await asyncio.wait_for(self.ws.receive(), timeout)
        except TimeoutError as exc:
            raise _CloseConnection(CloseCode.GOING_AWAY, "idle timeout") from exc
        if message["type"] == "websocket.disconnect":
            raise _Disconnected
        text: str | None = message.get("text")
        return text

    async def _send_direct(self, text: str) -> None:
        try:
            await self.ws.send_text(text)
        except Exception as exc:  # the peer went away mid-send (starlette #1811)
            raise _Disconnected from exc

    # ------------------------------------------------------------------ handshake

    async def _handshake(self) -> None:
        deadline = time.monotonic() + self.settings.auth_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await self._perform(self.machine.auth_timed_out())
            try:
                text = await self._receive(remaining)
            except _CloseConnection:
                await self._perform(self.machine.auth_timed_out())
                raise
            actions = (
                self.machine.receive_binary() if text is None else self.machine.receive_text(text)
            )
            await self._perform(actions)
            if self._claims is not None:
                return

    def account_deleted(self, user_id: str) -> None:
        """The account ``user_id`` was just deleted: if it is this connection's, close it."""
        if self._claims is not None and self._claims.user_id == user_id:
            self._account_gone.set()

    async def _verify(self, token: str) -> Claims:
        """The token's claims, if it is valid and its account still exists."""
        claims = self.services.tokens.verify_access(token)
        await ensure_account_exists(self.services.db, claims, when_unreachable="a session")
        return claims

    async def _authenticate(self, start: SessionStart) -> None:
        try:
            claims = await self._verify(start.token)
        except AuthError as exc:
            await self._perform(
                self.machine.authentication_failed(exc.code, exc.message, start.request_id)
            )
            return
        event_log = self.services.log
        resumed = False
        info = None
        backlog_from = 0
        if start.resume is not None:
            info = await event_log.get_session(start.resume.session_id)
            if info is not None and info.user_id != claims.user_id:
                await self._perform(
                    self.machine.authentication_failed(
                        ErrorCode.RESUME_FORBIDDEN,
                        "that session belongs to another user",
                        start.request_id,
                    )
                )
                return
            if info is not None and info.epoch == start.resume.epoch:
                # Events arriving from here on are lag only past the head seen now.
                self._head = self._written = info.head
                self._subscription = await event_log.subscribe(info.session_id, self._deliver)
                # Subscribed first, then check the history: nothing can fall in between.
                if await event_log.read_since(info.session_id, start.resume.last_seq) is not None:
                    resumed = True
                    backlog_from = start.resume.last_seq
                else:
                    await self._subscription.close()
                    self._subscription = None
                    self._forget_deliveries()
        if not resumed:
            session_id = secrets.token_urlsafe(16)
            info = await event_log.create_session(session_id, claims.user_id)
            self._subscription = await event_log.subscribe(session_id, self._deliver)
        assert info is not None
        self._claims = claims
        self._start = start
        self.machine.authenticated(info.session_id, backlog_from)
        # What was appended before this connection is its backlog, not lag (see _deliver).
        self._written = max(backlog_from, info.head, self._written)
        self._progress_at = time.monotonic()
        if resumed:
            self.machine.scans_in_flight(await self._scans_in_flight(info.session_id))
        now = datetime.now(UTC)
        self._expires_at = now + timedelta(seconds=self.settings.max_lifetime_s)
        head = info.head
        if resumed:
            # Events may have been appended since the session was looked up.
            head = (await event_log.get_session(info.session_id) or info).head
        ready = SessionReady(
            request_id=start.request_id,
            session_id=info.session_id,
            epoch=info.epoch,
            resumed=resumed,
            last_seq=head,
            user_id=claims.user_id,
            heartbeat_interval_s=self.settings.heartbeat_interval_s,
            expires_at=self._expires_at,
        )
        await self._send_direct(ready.model_dump_json())
        limiter = self.services.limiter
        for kind in ("scan", "chat"):
            self._budgets[kind] = await limiter.peek(claims.user_id, kind)
        budgets = RateLimitsUpdated(
            scans=_budget(self._budgets["scan"]), chats=_budget(self._budgets["chat"])
        )
        await self._send_direct(budgets.model_dump_json())

    # ------------------------------------------------------------------ actions

    async def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendEvent):
                if action.logged:
                    await self._append(event_payload(action.event))
                elif self._claims is None:
                    await self._send_direct(action.event.model_dump_json())
                else:
                    # Once the writer runs, only it writes to the socket.
                    self._deliver(0, action.event.model_dump_json())
            elif isinstance(action, Authenticate):
                await self._authenticate(action.message)
            elif isinstance(action, StartScan):
                await self._start_scan(action.message)
            elif isinstance(action, CancelScan):
                await self._cancel_scan(action.message)
            elif isinstance(action, AnswerClarify):
                await self._answer_clarify(action.message)
            elif isinstance(action, StartChat):
                await self._start_chat(action.message)
            elif isinstance(action, RefreshAuth):
                await self._refresh_auth(action.message)
            elif isinstance(action, Close):
                raise _CloseConnection(action.code, action.reason)

    async def _append(self, payload: dict[str, Any], *, key: str | None = None) -> int:
        assert self.machine.session_id is not None
        event_log = self.services.log
        seq = await event_log.append(self.machine.session_id, payload, key=key)
        if seq == AppendStatus.SESSION_GONE:
            raise _CloseConnection(CloseCode.INTERNAL_ERROR, _HISTORY_LOST)
        if seq > 0 and not event_log.delivers_on_append:
            # This connection wrote it: send it now rather than after the pub/sub round trip.
            # The copy that pub/sub brings later has a seq already sent and is dropped.
            self._deliver(seq, with_seq(seq, encode_payload(payload)))
        return seq

    async def _error(self, request_id: str | None, exc: WasteCoachError) -> None:
        error = Error(
            request_id=request_id, code=exc.code, message=exc.message, retryable=exc.retryable
        )
        await self._append(event_payload(error))

    async def _check_image(self, image: ImageRef) -> str | None:
        """Authorise an upload key; returns it (``None`` for an inline image)."""
        if not isinstance(image, UploadImage):
            return None
        assert self._claims is not None
        try:
            async with self.services.db.session() as session:
                await uploads.owned_upload(session, user_id=self._claims.user_id, key=image.key)
            found = await self.services.storage.head(image.key)
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
        if found is None:
            raise NotFound(
                f"upload {image.key!r} has not been received yet; PUT the file first",
                code=ErrorCode.UPLOAD_NOT_FOUND,
            )
        return image.key

    async def _within_budget(self, kind: Kind, request_id: str) -> bool:
        """Count the request against the user's budget; refuse it when spent."""
        status = await self._hit(kind)
        if status.allowed:
            return True
        self.machine.scan_rejected(request_id)
        await self._error(request_id, _over_budget(kind, status))
        return False

    async def _hit(self, kind: Kind) -> LimitStatus:
        assert self._claims is not None
        status = await self.services.limiter.hit(self._claims.user_id, kind)
        self._budgets[kind] = status
        self._deliver(0, _budget_event(kind, status).model_dump_json())
        return status

    def _budget_to_spare(self, kind: Kind) -> bool:
        """Whether the budget last seen leaves room for this request and one more: then
        the limiter's answer is all but certain, and the scan need not wait for it."""
        seen = self._budgets.get(kind)
        return seen is not None and min(seen.remaining_minute, seen.remaining_day) >= 2

    async def _settle(self, hit: asyncio.Task[LimitStatus] | None) -> LimitStatus | None:
        """The limiter's answer to a hit that ran beside the scan's checks."""
        if hit is None:
            return None
        return await hit

    async def _start_scan(self, message: ScanStart) -> None:
        assert self._claims is not None and self._start is not None
        session_id = self.machine.session_id
        assert session_id is not None
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
            self.machine.scan_rejected(request_id)
            await self._settle(hit)
            await self._error(request_id, exc)
            return
        await self._guarded(self._accept_scan(message, upload_key, hit))

    async def _guarded(self, step: Any) -> None:
        """Run ``step`` to its end even if the connection ends meanwhile (the reader is
        cancelled at shutdown, the peer goes away): a scan.accepted is always followed by the
        enqueue or by a scan.done. ``run`` waits for guarded steps before it returns."""
        task: asyncio.Task[None] = asyncio.ensure_future(step)
        self._guards.add(task)
        task.add_done_callback(self._guards.discard)
        task.add_done_callback(_log_failure)
        await asyncio.shield(task)

    async def _accept_scan(
        self, message: ScanStart, upload_key: str | None, hit: asyncio.Task[LimitStatus] | None
    ) -> None:
        assert self._claims is not None and self._start is not None
        session_id = self.machine.session_id
        assert session_id is not None
        request_id = message.request_id
        scan_id = new_id()
        seq = await self._append(
            event_payload(ScanAccepted(request_id=request_id, scan_id=scan_id)),
            key=f"{request_id}:accepted",
        )
        if seq == AppendStatus.DUPLICATE and (
            await self.services.log.open_scan(session_id, request_id) != scan_id
        ):  # (the key is ours when a retried append had run already: then it is accepted)
            await self._settle(hit)
            self.machine.scan_rejected(request_id)
            await self._error(
                request_id,
                WasteCoachError(
                    f"request_id {request_id!r} was already used in this session",
                    code=ErrorCode.DUPLICATE_REQUEST,
                ),
            )
            return
        self._scan_ids[request_id] = scan_id
        # From here on the scan has been accepted: every path ends in the enqueue or in a
        # scan.done, whatever fails.
        job = ScanJob(
            scan_id=scan_id,
            request_id=request_id,
            session_id=session_id,
            user_id=self._claims.user_id,
            locale=message.locale or self._start.locale,
            image=message.image,
            location=message.location,
            upload_key=upload_key,
            enqueued_at=time.time(),
        )
        try:
            status = await self._settle(hit)
        except _UNAVAILABLE:
            status = None  # the limiter is away; the budget last seen had room to spare
        if status is not None and not status.allowed:
            # Other sessions of this user spent the budget meanwhile (rare: it had room to
            # spare): the scan ends before it starts.
            error = _over_budget("scan", status)
            await self._end_scan(
                job, ErrorInfo(code=error.code, message=error.message, retryable=True)
            )
            return
        # Enqueue before the writer gets to send scan.accepted: every later event waits on the
        # job reaching a worker, and the writer sends while the enqueue awaits the broker.
        try:
            await self.services.runner.submit(job)
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
        request_id, scan_id = job.request_id, job.scan_id
        try:
            await asyncio.wait_for(
                scans.record_outcome(
                    self.services.db, **job_columns(job), status="failed", timings_ms={},
                    error=error.model_dump(mode="json"),
                ),
                _GUARD_WAIT_S / 4,
            )
        except Exception as exc:  # the database is away too: the client still gets its end
            log.warning("could not record failed scan %s: %s", scan_id, type(exc).__name__)
        done = ScanDone(request_id=request_id, scan_id=scan_id, status=ScanStatus.FAILED,
                        error=error)
        delay = 0.1
        deadline = time.monotonic() + _GUARD_WAIT_S / 2
        while True:
            try:
                await self._append(event_payload(done), key=f"{request_id}:done")
                return
            except _UNAVAILABLE:
                if time.monotonic() + delay > deadline:
                    log.error("scan %s was accepted and could not be ended", scan_id)
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _scans_in_flight(self, session_id: str) -> set[str]:
        """Request ids of the session's scans with a scan.accepted and no scan.done yet."""
        return set(await self.services.log.open_scans(session_id))

    async def _scan_id_of(self, request_id: str) -> str | None:
        scan_id = self._scan_ids.get(request_id)
        if scan_id is not None:
            return scan_id
        # Started on an earlier connection of this session and still running.
        assert self.machine.session_id is not None
        return await self.services.log.open_scan(self.machine.session_id, request_id)

    async def _cancel_scan(self, message: ScanCancel) -> None:
        assert self._claims is not None
        session_id = self.machine.session_id
        assert session_id is not None
        request_id = message.request_id
        scan_id = await self._scan_id_of(request_id)
        if scan_id is None:
            await self._error(
                request_id,
                WasteCoachError(
                    f"no scan with request_id {request_id!r} in this session",
                    code=ErrorCode.UNKNOWN_REQUEST,
                ),
            )
            return
        done = ScanDone(request_id=request_id, scan_id=scan_id, status=ScanStatus.CANCELLED)
        seq = await self._append(event_payload(done), key=f"{request_id}:done")
        if seq == AppendStatus.DUPLICATE:
            await self._error(
                request_id,
                WasteCoachError(
                    f"scan {request_id!r} has already ended", code=ErrorCode.UNKNOWN_REQUEST
                ),
            )
            return
        # The pipeline sees the scan closed at its next event and records the outcome.

    async def _answer_clarify(self, message: ClarifyAnswer) -> None:
        if await self._scan_id_of(message.request_id) is None:
            await self._error(
                message.request_id,
                WasteCoachError(
                    f"no scan with request_id {message.request_id!r} in this session",
                    code=ErrorCode.UNKNOWN_REQUEST,
                ),
            )
            return
        assert self.machine.session_id is not None
        await self.services.log.put_answer(
            self.machine.session_id, message.request_id, message.choice
        )

    async def _start_chat(self, message: ChatMessage) -> None:
        assert self._claims is not None and self._start is not None
        session_id = self.machine.session_id
        assert session_id is not None
        if not await self._within_budget("chat", message.request_id):
            return
        # Claimed and enqueued as one step, like a scan: a claimed request id always gets
        # its answer or its error.
        await self._guarded(self._accept_chat(message))

    async def _accept_chat(self, message: ChatMessage) -> None:
        assert self._claims is not None and self._start is not None
        session_id = self.machine.session_id
        assert session_id is not None
        if not await self.services.log.claim(session_id, f"{message.request_id}:accepted"):
            self.machine.scan_rejected(message.request_id)
            await self._error(
                message.request_id,
                WasteCoachError(
                    f"request_id {message.request_id!r} was already used in this session",
                    code=ErrorCode.DUPLICATE_REQUEST,
                ),
            )
            return
        job = ChatJob(
            request_id=message.request_id,
            session_id=session_id,
            user_id=self._claims.user_id,
            locale=message.locale or self._start.locale,
            text=message.text,
            scan_id=message.scan_id,
            enqueued_at=time.time(),
        )
        try:
            await self.services.runner.submit_chat(job)
        except Exception:
            log.exception("could not enqueue chat %s", message.request_id)
            self.machine.scan_rejected(message.request_id)
            await self._error(
                message.request_id,
                WasteCoachError("could not answer now; ask again", code=ErrorCode.INTERNAL),
            )

    async def _refresh_auth(self, message: AuthRefresh) -> None:
        assert self._claims is not None
        try:
            claims = await self._verify(message.token)
            if claims.user_id != self._claims.user_id:
                raise AuthError("the new token belongs to another user")
        except AuthError as exc:
            # The session keeps its current token until that one expires.
            await self._error(message.request_id, exc)
            return
        self._claims = claims
        self._auth_changed.set()
        refreshed = AuthRefreshed(
            request_id=message.request_id,
            expires_at=datetime.fromtimestamp(claims.expires_at, UTC),
        )
        self._deliver(0, refreshed.model_dump_json())

    # ------------------------------------------------------------------ tasks

    async def _reader(self) -> None:
        while not self._draining:
            text = await self._receive(self.services.settings.session.idle_timeout_s)
            actions = (
                self.machine.receive_binary() if text is None else self.machine.receive_text(text)
            )
            await self._perform(actions)

    async def _keep_alive(self) -> None:
        """The replay log expires when idle; a connected client keeps it alive. Its absence
        means the history is gone (expired, deleted, Redis restarted): close with 1011."""
        assert self.machine.session_id is not None and self._claims is not None
        if not await self.services.log.touch(self.machine.session_id):
            raise _CloseConnection(CloseCode.INTERNAL_ERROR, _HISTORY_LOST)
        # An account deleted through another process is noticed here, within touch_every.
        try:
            await ensure_account_exists(
                self.services.db, self._claims, when_unreachable="a keep-alive"
            )
        except AuthError as exc:
            raise _CloseConnection(CloseCode.AUTH_FAILED, ACCOUNT_GONE) from exc

    def _forget_deliveries(self) -> None:
        """A resume fell back to a new session: what the old one delivered meanwhile is not
        this connection's any more."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self._head = self._written = 0
        self._slow.clear()
        self._lost.clear()

    def _deliver(self, seq: int, event: str) -> None:
        """Called by the event log / hub for every event of this session."""
        if seq == LOST:
            self._lost.set()
            return
        if seq > self._head:
            self._head = seq
            if (
                seq - self._written > self.settings.max_unsent_events
                and time.monotonic() - self._progress_at > _STALL_S
            ):
                # Far behind and not moving: it has not taken what it was sent. (A client
                # catching up after a resume or a hub reconnect is behind, but moving.)
                self._slow.set()
        try:
            self.queue.put_nowait((seq, event))
        except asyncio.QueueFull:
            self._slow.set()

    async def _catch_up(self) -> None:
        session_id = self.machine.session_id
        assert session_id is not None
        events = await self.services.log.read_since(session_id, self.machine.last_seq)
        if events is None:
            raise _CloseConnection(CloseCode.INTERNAL_ERROR, _HISTORY_LOST)
        for seq, event in events:
            await self._write(seq, event)

    async def _write(self, seq: int, event: str) -> None:
        request_id = None
        event_type = ""
        # Only the events that end a request change the machine's state; parse just those.
        if '"type":"scan.done"' in event or '"type":"chat.done"' in event:
            parsed = json.loads(event)
            event_type = parsed["type"]
            request_id = parsed.get("request_id")
        if self.machine.should_deliver(seq, event_type, request_id):
            await self._send_direct(event)
        self._written = max(self._written, seq)
        self._progress_at = time.monotonic()

    async def _writer(self) -> None:
        await self._catch_up()
        while True:
            seq, event = await self.queue.get()
            if seq == _SHUTDOWN:
                raise _CloseConnection(CloseCode.SERVICE_RESTART, "server is restarting")
            if seq == 0:
                await self._send_direct(event)
                continue
            if seq == RESYNC or seq > self.machine.last_seq + 1:
                await self._catch_up()
                if seq == RESYNC:
                    continue
            await self._write(seq, event)

    async def _supervisor(self) -> None:
        """Ends the connection at its lifetime cap, when its token runs out, when the client
        is too slow, or when the session's history is gone; warns before the first two, and
        keeps the history alive meanwhile."""
        touch_every = min(30.0, self.services.settings.session.replay_ttl_s / 3)
        next_touch = time.monotonic() + touch_every
        lifetime_warned = False
        auth_warned_for: float | None = None
        token_end = 0.0
        token_warn_at = 0.0
        while True:
            assert self._claims is not None
            now = datetime.now(UTC).timestamp()
            end = self._expires_at.timestamp()
            warn_at = end - self.settings.expiry_warning_s
            if self._claims.expires_at != token_end:
                # A new token (the first, or a refresh): warn token_warning_s before it runs
                # out, or half way through a shorter life.
                token_end = self._claims.expires_at
                token_warn_at = token_end - min(
                    self.settings.token_warning_s, max(1.0, (token_end - now) / 2)
                )
            if now >= token_end:
                raise _CloseConnection(CloseCode.AUTH_FAILED, "access token expired")
            if now >= end:
                raise _CloseConnection(CloseCode.GOING_AWAY, "session lifetime reached")
            if not lifetime_warned and now >= warn_at:
                lifetime_warned = True
                warning = SessionExpiring(
                    close_at=self._expires_at, reason="session lifetime reached"
                )
                self._deliver(0, warning.model_dump_json())
            if auth_warned_for != token_end and now >= token_warn_at:
                auth_warned_for = token_end
                notice = AuthExpiring(expires_at=datetime.fromtimestamp(token_end, UTC))
                self._deliver(0, notice.model_dump_json())
            if time.monotonic() >= next_touch:
                await self._keep_alive()
                next_touch = time.monotonic() + touch_every
            upcoming = [t for t in (warn_at, end, token_end) if t > now]
            if auth_warned_for != token_end:
                upcoming.append(token_warn_at)
            if not lifetime_warned:
                upcoming.append(warn_at)
            wake = min(t for t in upcoming if t > now) if upcoming else now + 60
            wake = min(wake, now + max(0.0, next_touch - time.monotonic()))
            self._auth_changed.clear()
            waiters = {
                asyncio.ensure_future(self._slow.wait()),
                asyncio.ensure_future(self._lost.wait()),
                asyncio.ensure_future(self._auth_changed.wait()),
                asyncio.ensure_future(self._account_gone.wait()),
            }
            try:
                await asyncio.wait(waiters, timeout=max(0.0, wake - now),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if self._account_gone.is_set():
                raise _CloseConnection(CloseCode.AUTH_FAILED, ACCOUNT_GONE)
            if self._lost.is_set():
                raise _CloseConnection(CloseCode.INTERNAL_ERROR, _HISTORY_LOST)
            if self._slow.is_set():
                raise _CloseConnection(
                    CloseCode.TRY_AGAIN_LATER, "client too slow; reconnect and resume"
                )


class _Disconnected(Exception):
    pass


def _log_failure(task: asyncio.Task[Any]) -> None:
    """A guarded step that failed after its connection ended has nobody left to tell."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, (_CloseConnection, _Disconnected, *_UNAVAILABLE)):
        log.error("a scan's start failed", exc_info=exc)


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
    error = WasteCoachError(
        f"too many {what}; try again in {status.reset_s} s", code=ErrorCode.RATE_LIMITED
    )
    error.retryable = True
    return error


def _budget_event(kind: Kind, status: LimitStatus) -> RateLimitsUpdated:
    if kind == "scan":
        return RateLimitsUpdated(scans=_budget(status))
    return RateLimitsUpdated(chats=_budget(status))
