"""One coaching WebSocket connection: a thin I/O adapter around ``protocol.session`` (which
parses frames and decides what each means) and ``server.sessions.service`` (which carries out
the requests: admission, budgets, the log, the runner).

A TaskGroup holds the connection's work, and ends it at the first error of any part:

* the reader, a task for the connection's whole life, feeds frames to the state machine and
  performs its actions (it is always inside ``receive()``, so a dead peer is noticed at once:
  starlette #1793);
* the writer drains a bounded queue into the socket, in ``seq`` order, filling any gap from the
  session's event log and dropping duplicates. It is a task only while the queue holds
  something: the first event queued starts it, and it ends when the queue is empty. There is
  one at a time, and everything sent after the sign-in goes through it, so the order is the
  queue's;
* the supervision ends the connection at its lifetime cap (after a ``session.expiring``
  warning), when its token runs out, when the client is too slow or silent for too long, or
  when the session's history is gone, and keeps that history alive meanwhile. It is a loop
  callback that runs at its next deadline or when something raises one of its flags; its
  verdict is raised in the group by a short task, and the keep-alive is a short task too.

An idle connection is thus one task (the reader) waiting in ``receive()`` and one timer: idle
sessions are what one server holds most of (ten thousand, ``docs/benchmarks.md``), and a task
asleep, with its coroutine, costs one of them about half a KiB.

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
enqueued as one step that the connection's end cannot split (see ``server.sessions.service``),
so an accepted scan always gets its end. When the session's history is gone under the connection
(expired, deleted, Redis restarted) it closes with 1011, and the client starts a new epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from starlette.websockets import WebSocket, WebSocketState

from protocol.messages import (
    AuthExpiring,
    Error,
    ErrorCode,
    ScanStart,
    SessionExpiring,
    SessionReady,
    SessionStart,
    event_payload,
)
from protocol.session import (
    Action,
    AnswerClarify,
    Authenticate,
    CancelScan,
    Close,
    CloseCode,
    DropFrame,
    LiveFrame,
    RefreshAuth,
    SendEvent,
    SessionMachine,
    StartChat,
    StartLive,
    StartScan,
    StopLive,
)
from server.auth.revocation import ACCOUNT_GONE
from server.errors import AuthError
from server.events.base import AppendStatus, Event, Signal, Subscription
from server.live.analyser import FrameAnalyser
from server.live.mode import LiveMode
from server.metrics import WS_SEND_QUEUE_DEPTH, count_close, count_sent
from server.sessions.service import (
    UNAVAILABLE,
    HistoryLost,
    Session,
    SessionDeps,
    verify,
)
from server.settings import SessionSettings
from server.ws.outbox import Outbox
from server.ws.registry import Connections

log = logging.getLogger(__name__)

_HISTORY_LOST = "event history lost; reconnect to start a new epoch"
_TOO_MANY = "too many connections from your address; try again later"
#: A client is stalled when no event could be written to it for this long.
_STALL_S = 1.0
#: How long a 1013 close may wait to be written (it queues behind unread events).
_SLOW_CLOSE_WAIT_S = 15.0


class _Shutdown:
    """Queued after the last event to flush on shutdown."""


_SHUTDOWN = _Shutdown()
#: What the writer takes: a logged event (seq > 0) or one for this connection only (seq 0),
#: a signal from the log, or the shutdown marker.
_Item = Event | Signal | _Shutdown


class _CloseConnection(Exception):
    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Disconnected(Exception):
    pass


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        deps: SessionDeps,
        settings: SessionSettings,
        registry: Connections,
        analyser: FrameAnalyser | None = None,
    ) -> None:
        self.ws = websocket
        self.analyser = analyser
        #: Live mode while it is on; afterwards, the last one (it counts frames still arriving
        #: for it in its drop notices).
        self._live: LiveMode | None = None
        self.deps = deps
        self.settings = settings
        self.registry = registry
        self.machine = SessionMachine(
            max_concurrent_scans=settings.max_concurrent_scans,
            max_concurrent_chats=settings.max_concurrent_chats,
        )
        self.queue: Outbox[_Item] = Outbox(settings.send_queue_size)
        # What ends the connection from outside its tasks: flags that the supervision reads
        # (four asyncio.Events, each with a task to wait on it, cost an idle session about
        # 8 KiB; docs/benchmarks.md, idle sessions).
        self._slow = False
        self._lost = False
        #: Set when the account was deleted through this process: the supervision closes.
        self._account_gone = False
        #: The connection's work while it runs (see the module's docstring): the group, the
        #: writer and the keep-alive while they run, the supervision's timer.
        self._group: asyncio.TaskGroup | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._touch_task: asyncio.Task[None] | None = None
        self._timer: asyncio.Handle | None = None
        #: When the supervision's next round is due (monotonic seconds).
        self._round_at = 0.0
        #: Set once the supervision raised its verdict: it stops.
        self._ended = False
        #: The supervision's state: the next keep-alive, the warnings given, the token's end
        #: and when to warn of it.
        self._next_touch = 0.0
        self._lifetime_warned = False
        self._auth_warned_for: float | None = None
        self._token_end = 0.0
        self._token_warn_at = 0.0
        #: Since when the reader has waited for a frame (``None`` while it performs one): the
        #: idle timeout counts from there.
        self._waiting_since: float | None = None
        #: Highest seq delivered to this connection, and the last one written to its socket.
        self._head = 0
        self._written = 0
        self._reader_task: asyncio.Task[None] | None = None
        self._progress_at = time.monotonic()
        self._draining = False
        self._subscription: Subscription | None = None
        self._session: Session | None = None
        self._expires_at = datetime.now(UTC)
        self._live_idle_tasks: set[asyncio.Task[None]] = set()
        #: Whether this connection's close was counted (``server.metrics``): once, by
        #: whichever side closed first.
        self._close_counted = False

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        await self.ws.accept()
        address = self.ws.client.host if self.ws.client is not None else None
        if not self.registry.add(self, address):
            # Refused before anything is read: the address holds as many connections (or
            # unsigned ones) as it may. Nothing was counted, so nothing is undone.
            log.info("refused a connection: too many from %s", address)
            await self._close(CloseCode.TRY_AGAIN_LATER, _TOO_MANY)
            return
        try:
            if self.registry.draining:
                raise _CloseConnection(CloseCode.SERVICE_RESTART, "server is restarting")
            await self._handshake()
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._reader_task = group.create_task(self._reader(), name="ws-reader")
                self._start_writer(catch_up=True)
                self._next_touch = time.monotonic() + self.settings.touch_interval_s
                self._supervise()
            # The group ends by an error of one of its parts, but for a drain in which the
            # shutdown marker was dropped (a resume that fell back to a new session): the
            # reader stopped, the queue is flushed, the close is the drain's.
            raise _CloseConnection(CloseCode.SERVICE_RESTART, "server is restarting")
        except* _CloseConnection as group:
            exc = group.exceptions[0]
            assert isinstance(exc, _CloseConnection)
            await self._close(exc.code, exc.reason)
        except* HistoryLost:
            await self._close(CloseCode.INTERNAL_ERROR, _HISTORY_LOST)
        except* UNAVAILABLE as group:
            await self._unavailable(group.exceptions[0])
        except* _Disconnected:
            pass
        except* Exception as group:  # a bug: log it, and let the client resume
            log.error("connection failed", exc_info=group)
            await self._close(CloseCode.INTERNAL_ERROR, "internal error; reconnect and resume")
        finally:
            self._group = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._live is not None:
                await self._live.close()
            if self._session is not None:
                # A scan being accepted and enqueued finishes that step, whatever ended us.
                await self._session.settle()
            self.machine.closed()
            if self._subscription is not None:
                await self._subscription.close()
            self.registry.discard(self)
            if not self._close_counted:  # the peer vanished without a close frame
                self._count_close(None)

    def shutdown(self) -> None:
        """Server shutdown: stop reading the client (no new request is taken), flush what is
        queued, then close with 1012."""
        self._draining = True
        if self._reader_task is not None:
            # A scan being accepted is guarded (see server.sessions) and completes regardless.
            self._reader_task.cancel()
        try:
            self.queue.put_nowait(_SHUTDOWN)
        except asyncio.QueueFull:
            self._alert("slow")
        self._start_writer()

    def account_deleted(self, user_id: str) -> None:
        """The account ``user_id`` was just deleted: if it is this connection's, close it."""
        if self._session is not None and self._session.claims.user_id == user_id:
            self._alert("account_gone")

    async def _unavailable(self, exc: BaseException) -> None:
        """A service the connection needs failed: say so where possible, close with 1013."""
        log.info("closing a connection: %s (%s)", type(exc).__name__, exc)
        if self.ws.application_state is WebSocketState.CONNECTED:
            notice = Error(
                code=ErrorCode.SERVICE_UNAVAILABLE,
                message="the service is briefly unavailable; reconnect and resume",
                retryable=True,
            )
            text = notice.model_dump_json()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.send_text(text), 1)
                count_sent(text)
        await self._close(CloseCode.TRY_AGAIN_LATER, "service unavailable; reconnect and resume")

    async def _close(self, code: CloseCode, reason: str) -> None:
        # A slow client's close frame waits behind what its socket already holds: it gets
        # longer, so that a client that reads again soon sees 1013 rather than a reset.
        wait = _SLOW_CLOSE_WAIT_S if code is CloseCode.TRY_AGAIN_LATER else 2.0
        if self.ws.application_state is WebSocketState.CONNECTED:
            self._count_close(int(code))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(code=int(code), reason=reason[:120]), wait)

    def _count_close(self, code: int | None) -> None:
        if not self._close_counted:
            self._close_counted = True
            count_close(code)

    # ------------------------------------------------------------------ socket I/O

    async def _receive(self, timeout: float | None) -> str | bytes:
        """One frame: text, or binary (a camera frame of live mode); closed with 1001 after
        ``timeout`` seconds without one (``None``: the supervision keeps the time)."""
        if timeout is None:
            message = await self.ws.receive()
        else:
            try:
                # Not wait_for: on Python 3.11 it wraps receive() in a task of its own.
                async with asyncio.timeout(timeout):
                    message = await self.ws.receive()
            except TimeoutError as exc:
                raise _CloseConnection(CloseCode.GOING_AWAY, "idle timeout") from exc
        if message["type"] == "websocket.disconnect":
            self._count_close(message.get("code"))
            raise _Disconnected
        text: str | None = message.get("text")
        if text is not None:
            return text
        data: bytes = message.get("bytes") or b""
        return data

    async def _send_direct(self, text: str) -> None:
        try:
            await self.ws.send_text(text)
        except Exception as exc:  # the peer went away mid-send (starlette #1811)
            raise _Disconnected from exc
        count_sent(text)

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
            await self._perform(self._parse(text))
            if self._session is not None:
                return

    async def _authenticate(self, start: SessionStart) -> None:
        try:
            claims = await verify(self.deps, start.token)
        except AuthError as exc:
            await self._perform(
                self.machine.authentication_failed(exc.code, exc.message, start.request_id)
            )
            return
        event_log = self.deps.log
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
        session = Session(
            self.deps, self, session_id=info.session_id, claims=claims, locale=start.locale
        )
        self.machine.authenticated(info.session_id, backlog_from)
        # What was appended before this connection is its backlog, not lag (see _deliver).
        self._written = max(backlog_from, info.head, self._written)
        self._progress_at = time.monotonic()
        if resumed:
            self.machine.scans_in_flight(await session.open_scans())
            self.machine.chats_in_flight(await session.open_chats())
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
        await self._send_direct((await session.budgets()).model_dump_json())
        self._session = session
        self.registry.signed_in(self)

    # ------------------------------------------------------------------ actions

    async def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            session = self._session  # (set by an Authenticate earlier in the list)
            if isinstance(action, SendEvent):
                if session is None:
                    await self._send_direct(action.event.model_dump_json())
                elif action.logged:
                    seq = await self.deps.log.append(
                        session.session_id, event_payload(action.event)
                    )
                    if seq == AppendStatus.SESSION_GONE:
                        raise HistoryLost
                else:
                    # Once the writer runs, only it writes to the socket.
                    self.notify(action.event)
            elif isinstance(action, Authenticate):
                await self._authenticate(action.message)
            elif isinstance(action, Close):
                raise _CloseConnection(action.code, action.reason)
            else:
                assert session is not None, "the machine sends requests only once authenticated"
                if isinstance(action, StartScan):
                    await session.start_scan(action.message)
                elif isinstance(action, CancelScan):
                    await session.cancel(action.message)
                elif isinstance(action, AnswerClarify):
                    await session.answer_clarify(action.message)
                elif isinstance(action, StartChat):
                    await session.start_chat(action.message)
                elif isinstance(action, RefreshAuth):
                    await session.refresh_auth(action.message)
                    self._wake()  # a new token: new deadlines
                elif isinstance(action, LiveFrame):
                    assert self._live is not None
                    self._live.offer(action.frame)
                elif isinstance(action, DropFrame):
                    if self._live is not None:
                        self._live.drop(action.reason)
                elif isinstance(action, StartLive):
                    await self._start_live(session, action)
                elif isinstance(action, StopLive):
                    await self._stop_live()

    # ------------------------------------------------------------------ live mode

    async def _start_live(self, session: Session, action: StartLive) -> None:
        if self.analyser is None:  # pragma: no cover - every server builds one
            self.machine.live_ended()
            self.notify(Error(request_id=action.message.request_id, code=ErrorCode.INTERNAL,
                              message="live mode is not available on this server"))
            return
        if self._live is not None:
            await self._live.close()  # the previous one (stopped): its notices end here
        self._live = LiveMode(action.message, session.locale, self.analyser, self)
        self.notify(self._live.started())

    async def _stop_live(self, reason: str = "client") -> None:
        if self._live is not None:
            self.notify(await self._live.stop(reason))

    # The live mode's port back to this connection.

    def admit_scan(self, request_id: str) -> bool:
        return self.machine.admit_live_scan(request_id)

    async def start_scan(self, message: ScanStart) -> None:
        assert self._session is not None
        await self._session.start_scan(message)

    def idle(self, mode: LiveMode) -> None:
        if mode is self._live and self.machine.live_request_id == mode.request_id:
            self.machine.live_ended()
            task = asyncio.ensure_future(self._stop_live("idle"))
            self._live_idle_tasks.add(task)
            task.add_done_callback(self._live_idle_tasks.discard)

    # The session service's port back to this connection.

    def notify(self, event: BaseModel) -> None:
        self._deliver(Event(0, event.model_dump_json()))

    def release(self, request_id: str) -> None:
        self.machine.scan_rejected(request_id)

    # ------------------------------------------------------------------ tasks

    async def _reader(self) -> None:
        while not self._draining:
            # The idle timeout is the supervision's (its timer is there anyway); an
            # ``asyncio.timeout`` here would keep a handle of its own for every idle socket.
            self._waiting_since = since = time.monotonic()
            if self._round_at > since + self.settings.idle_timeout_s:
                self._wake()  # its next round is later than this wait's idle deadline
            try:
                frame = await self._receive(None)
            finally:
                self._waiting_since = None
            await self._perform(self._parse(frame))

    def _parse(self, frame: str | bytes) -> list[Action]:
        if isinstance(frame, bytes):
            return self.machine.receive_binary(frame)
        return self.machine.receive_text(frame)

    async def _keep_alive(self) -> None:
        """The replay log expires when idle; a connected client keeps it alive. Its absence
        means the history is gone (expired, deleted, Redis restarted): close with 1011."""
        assert self._session is not None
        try:
            await self._session.keep_alive()
        except AuthError as exc:
            # An account deleted through another process is noticed here, within touch_every.
            raise _CloseConnection(CloseCode.AUTH_FAILED, ACCOUNT_GONE) from exc

    def _forget_deliveries(self) -> None:
        """A resume fell back to a new session: what the old one delivered meanwhile is not
        this connection's any more."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self._head = self._written = 0
        self._slow = self._lost = False

    def _deliver(self, item: Event | Signal) -> None:
        """Called by the event log / hub for every event of this session."""
        if item is Signal.LOST:
            self._alert("lost")
            return
        if isinstance(item, Event) and item.seq > self._head:
            self._head = item.seq
            if (
                item.seq - self._written > self.settings.max_unsent_events
                and time.monotonic() - self._progress_at > _STALL_S
            ):
                # Far behind and not moving: it has not taken what it was sent. (A client
                # catching up after a resume or a hub reconnect is behind, but moving.)
                self._alert("slow")
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self._alert("slow")
        WS_SEND_QUEUE_DEPTH.observe(self.queue.qsize())
        self._start_writer()

    async def _catch_up(self) -> None:
        session_id = self.machine.session_id
        assert session_id is not None
        events = await self.deps.log.read_since(session_id, self.machine.last_seq)
        if events is None:
            raise HistoryLost
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

    def _start_writer(self, *, catch_up: bool = False) -> None:
        """Start the writer if the connection runs and none is running: it drains the queue,
        so one started before anything was queued (the first, which catches up) ends soon."""
        if self._group is None or self._writer_task is not None:
            return  # not running yet (the group's start catches up), or a writer runs
        self._writer_task = self._spawn(self._writer(catch_up), "ws-writer")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
        """Run ``work`` in the connection's group; ``None`` if the group takes no more work
        (a part failed, and the group is ending: what was asked for is moot)."""
        group = self._group
        try:
            if group is not None:
                return group.create_task(work, name=name)
        except RuntimeError:
            pass
        work.close()
        return None

    async def _writer(self, catch_up: bool) -> None:
        try:
            if catch_up:
                await self._catch_up()
            # Until the queue is empty: between that test and this task's end nothing else
            # runs, so an event queued later starts the next writer.
            while not self.queue.empty():
                item = self.queue.get_nowait()
                if isinstance(item, _Shutdown):
                    raise _CloseConnection(CloseCode.SERVICE_RESTART, "server is restarting")
                if item is Signal.RESYNC:
                    await self._catch_up()
                    continue
                assert isinstance(item, Event)
                if item.seq == 0:
                    await self._send_direct(item.text)
                    continue
                if item.seq > self.machine.last_seq + 1:
                    await self._catch_up()
                await self._write(item.seq, item.text)
        finally:
            self._writer_task = None

    # ------------------------------------------------------------------ supervision

    def _supervise(self) -> None:
        """The supervision's round: close when a flag or a deadline says so, warn, start the
        keep-alive when it is due, and set the timer for the next round."""
        self._timer = None
        if self._group is None or self._ended:
            return
        try:
            delay = self._check()
        except Exception as exc:  # its verdict, or a fault in the round itself
            self._ended = True
            # Raised in the group, as the reader's and the writer's errors are: it ends them.
            # A fault too: raised here, it would go to the loop's exception handler and leave
            # the connection open with no supervision (no idle timeout, lifetime cap, token
            # expiry, slow-client close or keep-alive); in the group it closes 1011.
            self._spawn(_raise(exc), "ws-supervision")
            return
        if self._touch_task is None and time.monotonic() >= self._next_touch:
            # When it is done, it runs the next round (with the next keep-alive's time).
            self._touch_task = self._spawn(self._touch(), "ws-keep-alive")
        if self._timer is not None:
            # Woken during the round (its own warning filled the send queue): that re-run
            # comes first and sets the next timer; overwriting its handle would leave it live.
            return
        self._round_at = time.monotonic() + delay
        self._timer = asyncio.get_running_loop().call_later(delay, self._supervise)

    def _check(self) -> float:
        """Raise what ends the connection now; else warn where it is time to, and give the
        seconds until the next round."""
        if self._account_gone:
            raise _CloseConnection(CloseCode.AUTH_FAILED, ACCOUNT_GONE)
        if self._lost:
            raise HistoryLost
        if self._slow:
            raise _CloseConnection(
                CloseCode.TRY_AGAIN_LATER, "client too slow; reconnect and resume"
            )
        assert self._session is not None
        claims = self._session.claims
        now = datetime.now(UTC).timestamp()
        mono = time.monotonic()
        end = self._expires_at.timestamp()
        warn_at = end - self.settings.expiry_warning_s
        if claims.expires_at != self._token_end:
            # A new token (the first, or a refresh): warn token_warning_s before it runs
            # out, or half way through a shorter life.
            self._token_end = claims.expires_at
            self._token_warn_at = self._token_end - min(
                self.settings.token_warning_s, max(1.0, (self._token_end - now) / 2)
            )
        token_end, token_warn_at = self._token_end, self._token_warn_at
        if now >= token_end:
            raise _CloseConnection(CloseCode.AUTH_FAILED, "access token expired")
        if now >= end:
            raise _CloseConnection(CloseCode.GOING_AWAY, "session lifetime reached")
        # The idle timeout runs while the reader waits for a frame, not while it performs one
        # (nor once a drain stopped it); the reader wakes the supervision if needed.
        idle_at: float | None = None
        if self._waiting_since is not None and not self._draining:
            idle_at = self._waiting_since + self.settings.idle_timeout_s
            if mono >= idle_at:
                raise _CloseConnection(CloseCode.GOING_AWAY, "idle timeout")
        if not self._lifetime_warned and now >= warn_at:
            self._lifetime_warned = True
            self.notify(
                SessionExpiring(close_at=self._expires_at, reason="session lifetime reached")
            )
        if self._auth_warned_for != token_end and now >= token_warn_at:
            self._auth_warned_for = token_end
            self.notify(AuthExpiring(expires_at=datetime.fromtimestamp(token_end, UTC)))
        upcoming = [t for t in (warn_at, end, token_end) if t > now]
        if self._auth_warned_for != token_end:
            upcoming.append(token_warn_at)
        if not self._lifetime_warned:
            upcoming.append(warn_at)
        wake = min(t for t in upcoming if t > now) if upcoming else now + 60
        delay = wake - now
        if self._touch_task is None and self._next_touch > mono:
            delay = min(delay, self._next_touch - mono)
        if idle_at is not None:
            delay = min(delay, idle_at - mono)
        return max(0.0, delay)

    async def _touch(self) -> None:
        try:
            await self._keep_alive()
            self._next_touch = time.monotonic() + self.settings.touch_interval_s
        finally:
            self._touch_task = None
        self._wake()

    def _alert(self, flag: Literal["slow", "lost", "account_gone"]) -> None:
        """Raise one of the supervision's flags and run its round."""
        setattr(self, "_" + flag, True)
        self._wake()

    def _wake(self) -> None:
        """Run the supervision's round soon (once it runs: its first round reads the flags)."""
        if self._group is None or self._ended:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._round_at = 0.0
        self._timer = asyncio.get_running_loop().call_soon(self._supervise)


async def _raise(exc: BaseException) -> None:
    raise exc
