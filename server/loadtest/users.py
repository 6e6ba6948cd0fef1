"""The simulated app users of a load test (Locust users), one class for every scenario.

Each user signs in (a new guest, or a token from ``--tokens``), opens one coaching session and
then, task after task, does what its scenario says: scans a photo (inline or uploaded), scans
and asks follow-up questions, streams camera frames in live mode, or only keeps its session
alive with the protocol's heartbeat. Everything it measures goes to two places: Locust's
statistics (``events.request`` with one ``request_type`` per figure, so Locust's console and web
UI show them live) and the process's :class:`~server.loadtest.figures.Figures` (exact HDR
histograms, merged across Locust's workers for the report).

When the server closes a connection the user does what docs/protocol.md section 7.5 asks of an
app: it reconnects with backoff and resumes, and the scans it was waiting for go on from the
replay. What no app could get past (sign-in refused, a server gone for good) stops the whole
run as failed, rather than letting every user retry until the duration ends.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gevent
from locust import task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser

from protocol.live import encode_frame
from protocol.messages import (
    BinsSuggested,
    ChatDelta,
    ChatDone,
    ChatMessage,
    ClarifyAnswer,
    CoachingDelta,
    Error,
    GeoPoint,
    InlineImage,
    LiveDropped,
    LiveHint,
    LiveScan,
    LiveStart,
    LiveStarted,
    LiveStop,
    LiveStopped,
    Locale,
    Pong,
    ScanAccepted,
    ScanClarify,
    ScanClassified,
    ScanDone,
    ScanStart,
    ScanStatus,
    UploadImage,
)
from server.loadtest.figures import Figures
from server.loadtest.photos import Photo
from server.loadtest.wsclient import (
    RESUMABLE,
    Closed,
    CoachConnection,
    Malformed,
    Received,
    Refused,
    Unreachable,
)

#: Follow-up questions of the scan+chat scenario, per locale (what people ask after a scan).
QUESTIONS = {
    "ko": ["뚜껑은 어떻게 버려요?", "라벨은 떼야 하나요?", "씻어서 버려야 해요?",
           "가까운 수거함은 어디예요?"],
    "en": ["What do I do with the cap?", "Do I need to peel the label?",
           "Should I rinse it first?", "Where is the nearest bin for it?"],
}
#: A guest token is renewed this long before it expires (a guest token cannot be refreshed
#: on the connection: the user signs in again and opens a new session).
TOKEN_MARGIN_S = 30.0


class RunState:
    """What every user of this process shares: the options, the photos, the figures, and how
    to stop the whole run. Set up by the locustfile when the run starts."""

    options: Any = None
    photos: ClassVar[list[Photo]] = []
    tokens: ClassVar[list[str]] = []
    figures: Figures = Figures()
    #: Called with a reason when the run must stop as failed (set by the locustfile).
    stop_run: Any = None
    _token_turn = itertools.count()
    _malformed_examples: ClassVar[list[str]] = []

    @classmethod
    def next_token(cls) -> str:
        return cls.tokens[next(cls._token_turn) % len(cls.tokens)]

    @classmethod
    def example(cls, text: str) -> None:
        if len(cls._malformed_examples) < 5:
            cls._malformed_examples.append(text)
            cls.figures.count("malformed_examples", text[:300])


class Fatal(Exception):
    """The run cannot go on (the reason says why); the user stops and the run ends."""


@dataclass
class ScanWatch:
    """One scan from its start (``scan.start`` sent, or ``live.scan`` received) to scan.done."""

    request_id: str
    started: float
    scan_id: str | None = None
    classified: bool = False
    first_token: float | None = None
    last_token: float | None = None
    status: str | None = None  #: ScanStatus value, "refused" (an error and no scan), "lost"
    done: bool = False


@dataclass
class ChatWatch:
    request_id: str
    started: float
    first_token: bool = False
    done: bool = False
    outcome: str | None = None


@dataclass
class Pump:
    """What one wait on the socket is waiting for."""

    scans: dict[str, ScanWatch] = field(default_factory=dict)
    chats: dict[str, ChatWatch] = field(default_factory=dict)
    live_id: str | None = None
    live_started: bool = False
    live_stopped: bool = False
    frames_sent: dict[int, float] = field(default_factory=dict)


class CoachUser(FastHttpUser):
    """One person with the app open. The scenario comes from ``--scenario``."""

    # Locust needs a host; -H (or the master) gives it.
    host = "http://127.0.0.1:8000"

    def __init__(self, environment: Any) -> None:
        options = environment.parsed_options
        # FastHttpUser builds its client from these in __init__: set them first, so that no
        # HTTP call (sign-in, upload) can wait longer than --timeout.
        self.network_timeout = options.timeout
        self.connection_timeout = options.timeout
        super().__init__(environment)
        self.options = options
        self.figures = RunState.figures
        self.scenario: str = options.scenario
        self.locale: str = options.locale
        ws_base = self.host.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        self.conn = CoachConnection(ws_base.rstrip("/") + "/api/v1/coach/ws",
                                    timeout_s=options.timeout)
        self.token = ""
        self.token_expires = float("inf")
        self._ids = itertools.count(1)
        self._tag = f"{random.getrandbits(32):08x}"

    # ----------------------------------------------------------------------- Locust hooks

    def wait_time(self) -> float:
        if self.scenario == "idle":
            return 0.0
        low, high = self.options.think
        return random.uniform(low, max(low, high))

    def on_start(self) -> None:
        self._guarded(self._open_fresh)

    def on_stop(self) -> None:
        self.conn.close()

    @task
    def act(self) -> None:
        self._guarded(self._act)

    # ----------------------------------------------------------------------- reporting

    def report(self, figure: str, ms: float, size: int = 0) -> None:
        self.figures.record(figure, ms)
        self.environment.events.request.fire(
            request_type=figure, name=self.scenario, response_time=ms, response_length=size,
            exception=None, context={},
        )

    def error(self, code: str, message: str) -> None:
        """An error a user met: counted by code, and a failure in Locust's statistics."""
        self.figures.count("errors", code)
        self.environment.events.request.fire(
            request_type="error", name=code, response_time=0, response_length=0,
            exception=RuntimeError(message), context={},
        )

    def _guarded(self, step: Any) -> None:
        try:
            step()
        except Fatal as exc:
            self.figures.fail(str(exc))
            if RunState.stop_run is not None:
                RunState.stop_run(str(exc))
            self.conn.close()
            raise StopUser() from exc

    # ----------------------------------------------------------------------- sign-in

    def _sign_in(self) -> None:
        if RunState.tokens:
            self.token = RunState.next_token()
            self.token_expires = float("inf")
            return
        started = time.perf_counter()
        with self.client.post("/api/v1/auth/guest", name="sign_in", catch_response=True) as resp:
            status = resp.status_code
            if status == 201:
                try:
                    body = resp.json()
                    token, expires_in = body["access_token"], float(body["expires_in"])
                except (ValueError, KeyError, TypeError) as exc:
                    resp.failure(f"sign-in answered {resp.text[:200]!r}")
                    raise Fatal(f"guest sign-in at {self.host} answered something that is not "
                                f"a token: {resp.text[:200]!r}") from exc
                resp.success()
            else:
                resp.failure(f"HTTP {status}")
                detail = (resp.text or "")[:300]
                if status == 0:
                    raise Fatal(f"guest sign-in at {self.host} failed: cannot reach the server "
                                f"({resp.error})")
                hint = ""
                if status == 403:
                    hint = " (guest sign-in is off on this server: pass --tokens FILE)"
                elif status == 429:
                    hint = (" (the per-address guest budget: raise the server's "
                            "WASTECOACH_ACCOUNTS__GUESTS_PER_MINUTE and __GUESTS_PER_DAY for "
                            "load tests, or pass --tokens FILE)")
                raise Fatal(f"guest sign-in refused: HTTP {status} {detail}{hint}")
        self.figures.record("sign_in", (time.perf_counter() - started) * 1000)
        self.token = token
        self.token_expires = time.monotonic() + expires_in

    def _open_fresh(self) -> None:
        """Sign in and open a new session (not a resume). A server that turns the connection
        away for now (a resumable close such as 1013, too many connections from this address;
        or no answer at all) is tried again with backoff, as docs/protocol.md section 7.5 asks;
        one that refuses the session stops the run."""
        self._sign_in()
        backoff = 0.5
        last: Exception | None = None
        for attempt in range(self.options.reconnect_attempts + 1):
            if attempt:
                gevent.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, 30.0)
            started = time.perf_counter()
            try:
                received = self.conn.open(self.token, self.locale)
            except Refused as exc:
                raise Fatal(f"the server refused the session: {exc}") from exc
            except Malformed as exc:
                self._malformed(exc)
                raise Fatal(f"the server's answer to session.start is malformed: {exc}") from exc
            except Closed as exc:
                self.figures.count("closes", str(exc.code))
                if exc.code not in RESUMABLE:
                    raise Fatal(f"the server closed the connection before session.ready: "
                                f"{exc}") from exc
                last = exc
                continue
            except Unreachable as exc:
                last = exc
                continue
            self.figures.count("sessions_opened")
            self.report("connect", (time.perf_counter() - started) * 1000, received[0].size)
            return
        raise Fatal(f"could not open a session in {self.options.reconnect_attempts + 1} "
                    f"attempts; last: {last}")

    def _token_due(self) -> bool:
        return time.monotonic() > self.token_expires - TOKEN_MARGIN_S

    # ----------------------------------------------------------------------- scenarios

    def _act(self) -> None:
        if self.conn.ws is None or self._token_due():
            if self.conn.ws is not None:
                self.figures.count("token_renewals")
            self._open_fresh()
        if self.scenario == "idle":
            self._idle()
        elif self.scenario == "live":
            self._live()
        else:
            watch = self._scan()
            if self.scenario == "scan+chat" and watch is not None and watch.scan_id:
                for _ in range(self.options.chat_questions):
                    self._chat(watch.scan_id)

    def _idle(self) -> None:
        # A short slice, so that a stop is not held up by a whole heartbeat interval.
        self._pump(Pump(), until=lambda: False, seconds=min(self.conn.heartbeat_s, 5.0))

    def _image(self, photo: Photo) -> InlineImage | UploadImage | None:
        if not self.options.upload:
            return InlineImage.model_validate(
                {"content_type": photo.inline_type, "data": photo.inline_b64}
            )
        started = time.perf_counter()
        with self.client.post(
            "/api/v1/uploads", name="upload", catch_response=True,
            json={"content_type": photo.content_type, "size": len(photo.data)},
            headers={"Authorization": f"Bearer {self.token}"},
        ) as resp:
            if resp.status_code != 201:
                resp.failure(f"HTTP {resp.status_code}")
                self.error(_rest_code(resp), f"POST /api/v1/uploads: HTTP {resp.status_code} "
                                             f"{(resp.text or '')[:200]}")
                return None
            ticket = resp.json()
        with self.client.request(
            ticket["method"], ticket["url"], name="upload PUT", catch_response=True,
            # The client sets Content-Length from the body (the same value, signed).
            # (geventhttpclient sends bytes as they are; Locust's annotation is narrower.)
            data=photo.data,  # type: ignore[arg-type]
            headers={k: v for k, v in ticket["headers"].items()
                                      if k.lower() != "content-length"},
        ) as put:
            if put.status_code not in (200, 204):
                put.failure(f"HTTP {put.status_code}")
                self.error("upload_put_failed", f"PUT of the photo: HTTP {put.status_code}")
                return None
        self.figures.record("upload", (time.perf_counter() - started) * 1000)
        return UploadImage(key=ticket["key"])

    def _photo(self) -> Photo:
        if not RunState.photos:
            raise Fatal("no photos to scan (--photos)")
        return random.choice(RunState.photos)

    def _scan(self) -> ScanWatch | None:
        photo = self._photo()
        image = self._image(photo)
        if image is None:
            return None
        rid = f"s{self._tag}-{next(self._ids)}"
        message = ScanStart(
            request_id=rid, image=image, locale=Locale(self.locale),
            location=GeoPoint(lat=self.options.lat, lon=self.options.lon),
        )
        watch = ScanWatch(rid, time.perf_counter())
        self.figures.count("scans_started")
        self._send(message)
        pump = Pump(scans={rid: watch})
        self._pump(pump, until=lambda: watch.done, seconds=self.options.scan_timeout)
        if not watch.done:
            self._scan_ended(watch, "timed_out")
            self.error("scan_timeout", f"no scan.done within {self.options.scan_timeout:g} s")
        return watch

    def _chat(self, scan_id: str) -> None:
        rid = f"c{self._tag}-{next(self._ids)}"
        text = random.choice(QUESTIONS[self.locale])
        watch = ChatWatch(rid, time.perf_counter())
        self._send(ChatMessage(request_id=rid, text=text, scan_id=scan_id,
                               locale=Locale(self.locale)))
        self._pump(Pump(chats={rid: watch}), until=lambda: watch.done,
                   seconds=self.options.scan_timeout)
        if not watch.done:
            self.error("chat_timeout", f"no chat.done within {self.options.scan_timeout:g} s")

    def _live(self) -> None:
        photo = self._photo()
        rid = f"l{self._tag}-{next(self._ids)}"
        pump = Pump(live_id=rid)
        self._send(LiveStart(request_id=rid, locale=Locale(self.locale),
                             location=GeoPoint(lat=self.options.lat, lon=self.options.lon)))
        self._pump(pump, until=lambda: pump.live_started, seconds=self.options.timeout)
        if not pump.live_started:
            self.error("live_not_started", f"no live.started within {self.options.timeout:g} s")
            return
        every = 1.0 / self.options.live_fps
        end = time.monotonic() + self.options.live_seconds
        number = 0
        # Live mode belongs to the connection: after a reconnect it is off (live_stopped).
        while time.monotonic() < end and not pump.live_stopped:
            number += 1
            pump.frames_sent[number] = time.perf_counter()
            self._send_frame(encode_frame(rid, number, int(time.time() * 1000),
                                          photo.camera_frame))
            self.figures.count("live_frames_sent")
            self._pump(pump, until=lambda: pump.live_stopped, seconds=every)
        if not pump.live_stopped:
            self._send(LiveStop(request_id=rid))
        self._pump(pump, until=lambda: pump.live_stopped and all(
            w.done for w in pump.scans.values()), seconds=self.options.scan_timeout)
        for watch in pump.scans.values():
            if not watch.done:
                self._scan_ended(watch, "timed_out")
                self.error("scan_timeout", f"no scan.done within {self.options.scan_timeout:g} s")

    # ----------------------------------------------------------------------- the socket

    def _send(self, message: Any) -> None:
        # The message may not have reached the server: the next wait finds the connection
        # gone and resumes (and counts the close); a scan whose start was lost then times out
        # and says so.
        with contextlib.suppress(Closed):
            self.conn.send(message)
            self.figures.count("messages_sent")

    def _send_frame(self, data: bytes) -> None:
        with contextlib.suppress(Closed):  # as in _send
            self.conn.send_binary(data)
            self.figures.count("messages_sent")

    def _pump(self, pump: Pump, *, until: Any, seconds: float) -> None:
        """Read and handle events until ``until()`` holds or ``seconds`` pass, sending the
        heartbeat when it is due and resuming when the server closes the connection."""
        deadline = time.monotonic() + seconds
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                if self.conn.ws is None:
                    self._reconnect(pump, Closed(1006, "connection lost"))
                    continue
                if self.conn.ping_due():
                    self.conn.send_ping()
                    self.figures.count("messages_sent")
                got = self.conn.recv(min(left, max(self.conn.until_ping(), 0.05)))
            except Closed as exc:
                self._reconnect(pump, exc)
                continue
            except Malformed as exc:
                self._malformed(exc)
                self._lose(pump, "malformed")
                # A stream that broke the protocol cannot be trusted: a new session.
                self.conn.close()
                gevent.sleep(random.uniform(0.5, 1.0))
                self._open_fresh()
                return
            if got is not None:
                self._handle(pump, got)
            elif self.conn.pong_overdue():
                # Section 9: no pong within two heartbeat intervals means a dead connection.
                self.error("pong_timeout", "no pong within two heartbeat intervals")
                self.conn.close()
                self._reconnect(pump, Closed(1006, "no pong"))

    def _malformed(self, exc: Exception) -> None:
        RunState.example(str(exc))
        self.error("malformed_event", str(exc))

    def _handle(self, pump: Pump, got: Received) -> None:
        event, at = got.event, got.at
        self.figures.count("messages_received")
        rid = event.request_id
        if isinstance(event, Pong):
            sent = self.conn.pong_sent_at(rid)
            if sent is not None:
                self.report("pong", (at - sent) * 1000, got.size)
            return
        watch = pump.scans.get(rid) if rid is not None else None
        if watch is not None:
            self._scan_event(watch, event, at, got.size)
            return
        chat = pump.chats.get(rid) if rid is not None else None
        if chat is not None:
            self._chat_event(chat, event, at, got.size)
            return
        if isinstance(event, Error):
            self.error(event.code.value, event.message)
        elif isinstance(event, LiveStarted):
            pump.live_started = True
        elif isinstance(event, LiveHint):
            sent = pump.frames_sent.pop(event.frame, None)
            # Frames replaced unseen (latest wins) get no hint: forget them.
            for number in [n for n in pump.frames_sent if n < event.frame]:
                del pump.frames_sent[number]
            if sent is not None:
                self.report("live_hint", (at - sent) * 1000, got.size)
        elif isinstance(event, LiveScan):
            pump.scans[event.scan_request_id] = ScanWatch(event.scan_request_id, at)
            self.figures.count("scans_started")
        elif isinstance(event, LiveDropped):
            for reason, n in event.counts.items():
                self.figures.count("live_dropped", reason.value, n)
        elif isinstance(event, LiveStopped):
            pump.live_stopped = True
            self.figures.count("live_scans", "", event.scans)

    def _scan_event(self, watch: ScanWatch, event: Any, at: float, size: int) -> None:
        elapsed = (at - watch.started) * 1000
        if isinstance(event, ScanAccepted):
            watch.scan_id = event.scan_id
            self.report("accepted", elapsed, size)
        elif isinstance(event, ScanClassified):
            if not watch.classified:
                watch.classified = True
                self.report("classified", elapsed, size)
        elif isinstance(event, ScanClarify):
            # Load tests answer as a person would: the first choice.
            self._send_clarify(watch, event)
        elif isinstance(event, CoachingDelta):
            if watch.first_token is None:
                watch.first_token = at
                self.report("first_token", elapsed, size)
            elif watch.last_token is not None:
                self.report("token_gap", (at - watch.last_token) * 1000, size)
            watch.last_token = at
        elif isinstance(event, BinsSuggested):
            self.report("bins", elapsed, size)
        elif isinstance(event, ScanDone):
            self.report("end_to_end", elapsed, size)
            self._scan_ended(watch, event.status.value)
            if event.status is not ScanStatus.COMPLETED:
                code = event.error.code.value if event.error else f"scan_{event.status.value}"
                message = event.error.message if event.error else event.status.value
                self.error(code, f"scan {event.status.value}: {message}")
        elif isinstance(event, Error):
            self.error(event.code.value, event.message)
            if watch.scan_id is None:
                # Refused before scan.accepted: the scan never started (section 5).
                self._scan_ended(watch, "refused")

    def _send_clarify(self, watch: ScanWatch, event: ScanClarify) -> None:
        self.figures.count("clarify_asked")
        self._send(ClarifyAnswer(request_id=watch.request_id, choice=event.choices[0].label))

    def _scan_ended(self, watch: ScanWatch, status: str) -> None:
        watch.done = True
        watch.status = status
        self.figures.count("scans", status)
        self.figures.count("scans_finished")

    def _chat_event(self, chat: ChatWatch, event: Any, at: float, size: int) -> None:
        elapsed = (at - chat.started) * 1000
        if isinstance(event, ChatDelta):
            if not chat.first_token:
                chat.first_token = True
                self.report("chat_first_token", elapsed, size)
        elif isinstance(event, ChatDone):
            chat.done = True
            chat.outcome = event.outcome
            self.report("chat_done", elapsed, size)
            self.figures.count("chats", event.outcome)
            if event.outcome == "failed":
                self.error("chat_failed", "chat.done with outcome failed")
        elif isinstance(event, Error):
            chat.done = True
            self.error(event.code.value, event.message)

    # ----------------------------------------------------------------------- resuming

    def _lose(self, pump: Pump, why: str) -> None:
        """The scans and questions being waited for will never end (their session is gone)."""
        for watch in pump.scans.values():
            if not watch.done:
                self._scan_ended(watch, "lost")
                self.error("scan_lost", f"scan {watch.request_id} lost ({why})")
        for chat in pump.chats.values():
            if not chat.done:
                chat.done = True
                self.error("chat_lost", f"question {chat.request_id} lost ({why})")
        pump.live_started = pump.live_stopped = True

    def _reconnect(self, pump: Pump, closed: Closed) -> None:
        """The server closed the connection: resume (section 7.5), or start over, or stop the
        run when the server cannot be reached again."""
        code = closed.code
        self.figures.count("closes", str(code))
        if code == 4001 and not RunState.tokens:
            # The guest token expired on the connection: a guest cannot refresh it.
            self._lose(pump, "access token expired")
            self.figures.count("token_renewals")
            self._open_fresh()
            return
        if code not in RESUMABLE:
            self._lose(pump, f"closed with {code}")
            self.error(f"close_{code}", str(closed))
            gevent.sleep(random.uniform(0.5, 1.0))
            self._open_fresh()
            return
        backoff = random.uniform(1.0, 5.0) if code == 1012 else 0.5
        last: Exception = closed
        started_all = time.monotonic()
        for _attempt in range(self.options.reconnect_attempts):
            gevent.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, 30.0)
            self.figures.count("resumes", "attempted")
            started = time.perf_counter()
            try:
                received = self.conn.open(self.token, self.locale, resume=True)
            except (Unreachable, Closed) as exc:
                last = exc
                if isinstance(exc, Closed):
                    self.figures.count("closes", str(exc.code))
                continue
            except Refused as exc:
                self._lose(pump, f"resume refused ({exc.code})")
                self.error(exc.code, str(exc))
                self._open_fresh()
                return
            except Malformed as exc:
                self._malformed(exc)
                last = exc
                continue
            ready = received[0].event
            if pump.live_id is not None:
                pump.live_stopped = True  # live mode ended with its connection (section 15.1)
            self.report("resume", (time.perf_counter() - started) * 1000, received[0].size)
            if getattr(ready, "resumed", False):
                self.figures.count("resumes", "resumed")
            else:
                self.figures.count("resumes", "new_epoch")
                self._lose(pump, "resumed: false")
            return
        self.figures.count("resumes", "failed")
        why = f"{code}, {closed.reason}" if closed.reason else str(code)
        raise Fatal(
            f"the server closed a connection ({why}) "
            f"and {self.options.reconnect_attempts} reconnects over "
            f"{time.monotonic() - started_all:.0f} s failed; last: {last}"
        )


def _rest_code(resp: Any) -> str:
    try:
        return str(resp.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"http_{resp.status_code}"
