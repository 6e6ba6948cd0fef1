"""Live mode of one connection: camera frames in, hints out, a scan when an item is steady.

Frames arrive from the connection's reader (:meth:`LiveMode.offer`), already parsed and checked
against the live request by ``protocol.session``. Here:

* **Rate**: at most ``MAX_LIVE_FPS`` frames are taken in any one-second window, and frame
  numbers must grow; other frames are dropped unseen and counted.
* **Latest wins**: one frame is analysed at a time. A frame that arrives meanwhile waits in a
  single slot; a newer one replaces it, and the replaced one is counted in the next hint's
  ``skipped``. Nothing queues, so a slow analysis never builds a backlog, and what one live
  session holds is bounded: one frame analysed, one waiting, one kept as the best of the run.
* **Drops are told, not shouted**: dropped frames are summed in a ``live.dropped`` notice at
  most once a second, never an error per frame.
* **Hints**: every analysed frame gets a ``live.hint`` (its frame number, the skipped count,
  the guess, the picture's issues, the line to show, the progress towards a scan).
* **Scans**: when :class:`~server.live.tracker.Tracker` says the item is steady, the best frame
  of the run is scanned as ``<live request id>:<n>`` through the session's ordinary scan path
  (:meth:`LivePort.start_scan`: budgets, the log, the runner), and ``live.scan`` tells the
  client which request id its events carry.
* **Idle**: no frame for ``IDLE_S`` ends live mode with ``live.stopped`` (reason ``idle``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel

from protocol.live import CameraFrame
from protocol.messages import (
    MAX_LIVE_FPS,
    MAX_LIVE_FRAME_BYTES,
    DropReason,
    InlineImage,
    LiveDropped,
    LiveHint,
    LiveIssue,
    LiveScan,
    LiveStart,
    LiveStarted,
    LiveStopped,
    Locale,
    ScanStart,
)
from server.live.analyser import Analysis, Classified, FrameAnalyser
from server.live.hints import hint_text
from server.live.quality import Thumb
from server.live.tracker import STEADY_MS, Observation, Tracker
from server.vision.errors import ImageRejected

log = logging.getLogger(__name__)

#: Seconds without a frame after which live mode ends by itself.
IDLE_S = 30.0
#: Most a closing connection waits for the scans its live mode is starting.
START_WAIT_S = 10.0
#: Least time between two ``live.dropped`` notices.
NOTICE_EVERY_S = 1.0


class LivePort(Protocol):
    """What live mode needs of its connection."""

    def notify(self, event: BaseModel) -> None:
        """Send ``event`` to this connection only (seq 0)."""

    def admit_scan(self, request_id: str) -> bool:
        """Take a scan into the connection's cap on concurrent scans, if there is room."""

    async def start_scan(self, message: ScanStart) -> None:
        """Start a scan admitted by :meth:`admit_scan`, as if the client had sent it."""

    def idle(self, mode: LiveMode) -> None:
        """Live mode ended itself for want of frames."""


class LiveMode:
    def __init__(
        self,
        start: LiveStart,
        locale: Locale,
        analyser: FrameAnalyser,
        port: LivePort,
        *,
        clock: Callable[[], float] = time.monotonic,
        idle_s: float = IDLE_S,
    ) -> None:
        self.request_id = start.request_id
        self._start = start
        self._locale = start.locale or locale
        self._analyser = analyser
        self._port = port
        self._clock = clock
        self._idle_s = idle_s
        self._tracker = Tracker()
        self._accepted: deque[float] = deque()
        self._last_number: int | None = None
        #: The waiting frame (latest wins), its arrival time, and how many it replaced.
        self._pending: tuple[CameraFrame, float] | None = None
        self._skipped = 0
        self._task: asyncio.Task[None] | None = None
        self._thumb: Thumb | None = None
        self._classified: Classified | None = None
        #: The best frame of the current steady run: its number and its bytes.
        self._best: tuple[int, bytes, str] | None = None
        self._drops: dict[DropReason, int] = {}
        self._last_notice = float("-inf")
        self._notice_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._stopped = False
        #: Scans being started: not cancelled by stop (see _scan).
        self._starting: set[asyncio.Task[None]] = set()
        self.frames = 0
        self.analysed = 0
        self.scans = 0
        self._arm_idle()

    def started(self) -> LiveStarted:
        return LiveStarted(
            request_id=self.request_id,
            max_frame_bytes=MAX_LIVE_FRAME_BYTES,
            max_fps=MAX_LIVE_FPS,
            steady_ms=STEADY_MS,
        )

    # ------------------------------------------------------------------ frames in

    def offer(self, frame: CameraFrame) -> None:
        """Take a frame of this live request (from the reader; never blocks)."""
        if self._stopped:
            self.drop(DropReason.STOPPED)
            return
        now = self._clock()
        self._arm_idle()
        if self._last_number is not None and frame.number <= self._last_number:
            self.drop(DropReason.OUT_OF_ORDER)
            return
        while self._accepted and now - self._accepted[0] >= 1.0:
            self._accepted.popleft()
        if len(self._accepted) >= MAX_LIVE_FPS:
            self.drop(DropReason.RATE)
            return
        self._accepted.append(now)
        self._last_number = frame.number
        self.frames += 1
        if self._pending is not None:
            self._skipped += 1
        self._pending = (frame, now)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._analyse_pending(), name="live-analysis")

    def drop(self, reason: DropReason) -> None:
        """Count a frame dropped unseen; the client hears of it within a second."""
        self._drops[reason] = self._drops.get(reason, 0) + 1
        if self._notice_timer is not None:
            return
        wait = self._last_notice + NOTICE_EVERY_S - self._clock()
        if wait <= 0:
            self._send_drops()
        else:
            self._notice_timer = asyncio.get_running_loop().call_later(wait, self._send_drops)

    def _send_drops(self) -> None:
        self._notice_timer = None
        if not self._drops:
            return
        counts, self._drops = self._drops, {}
        self._last_notice = self._clock()
        what = ", ".join(f"{n} {reason.value.replace('_', ' ')}" for reason, n in counts.items())
        self._port.notify(
            LiveDropped(
                request_id=self.request_id,
                counts=counts,
                max_fps=MAX_LIVE_FPS,
                max_frame_bytes=MAX_LIVE_FRAME_BYTES,
                message=f"frames dropped unseen: {what}",
            )
        )

    # ------------------------------------------------------------------ analysis

    async def _analyse_pending(self) -> None:
        while self._pending is not None and not self._stopped:
            (frame, arrived), skipped = self._pending, self._skipped
            self._pending, self._skipped = None, 0
            try:
                analysis = await self._analyser.analyse(
                    frame.image, self._thumb, self._classified
                )
            except ImageRejected:
                self.drop(DropReason.NOT_IMAGE)
                continue
            if self._stopped:
                return
            self.analysed += 1
            self._thumb = analysis.measured.thumb
            self._classified = analysis.classified
            await self._judge(frame, arrived, skipped, analysis)

    async def _judge(
        self, frame: CameraFrame, arrived: float, skipped: int, analysis: Analysis
    ) -> None:
        c = analysis.classification
        measured = analysis.measured
        sure = c.confidence >= self._tracker.min_confidence
        issues = list(measured.issues)
        if not sure:
            issues.append(LiveIssue.UNSURE)
        decision = self._tracker.observe(
            Observation(
                frame=frame.number,
                at_ms=arrived * 1000,
                label=c.label,
                confidence=c.confidence,
                issues=tuple(issues),
                sharpness=measured.quality.sharpness,
            )
        )
        if decision.best_frame == frame.number:
            self._best = (frame.number, frame.image, analysis.content_type)
        elif decision.best_frame is None:
            self._best = None
        name = (c.name_ko if self._locale is Locale.KO else c.name_en) if sure else None
        scanning = decision.scan and self._best is not None
        self._port.notify(
            LiveHint(
                request_id=self.request_id,
                frame=frame.number,
                captured_ms=frame.captured_ms,
                skipped=skipped,
                label=c.label if sure else None,
                name=name,
                stream=c.stream if sure else None,
                confidence=c.confidence,
                issues=issues,
                text=hint_text(
                    self._locale,
                    name=name,
                    stream=c.stream,
                    issues=issues,
                    scanning=scanning,
                    scanned=decision.scanned,
                ),
                steady=decision.steady,
                quality=measured.quality,
                analysis_ms=round(analysis.elapsed_ms, 2),
            )
        )
        if scanning:
            await self._scan(c.label)

    async def _scan(self, label: str) -> None:
        assert self._best is not None
        number, image, content_type = self._best
        scan_request_id = f"{self.request_id}:{self.scans + 1}"
        if not self._port.admit_scan(scan_request_id):
            return  # as many scans run as may: the next steady frame tries again
        self.scans += 1
        self._tracker.scanned(label)
        self._port.notify(
            LiveScan(request_id=self.request_id, frame=number, scan_request_id=scan_request_id)
        )
        message = ScanStart(
            request_id=scan_request_id,
            image=InlineImage(
                content_type=content_type,
                data=base64.b64encode(image).decode("ascii"),
            ),
            location=self._start.location,
            locale=self._locale,
        )
        # Started in a task of its own, which stop() does not cancel: once the slot is taken
        # and live.scan said so, the scan must get its scan.accepted or its error (a stop
        # during the budget check would otherwise leave the slot taken and the scan unsaid).
        task = asyncio.create_task(self._port.start_scan(message), name="live-scan-start")
        self._starting.add(task)
        task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[None]) -> None:
        self._starting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a live scan could not start: %r", task.exception())

    # ------------------------------------------------------------------ the end

    def _arm_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        with contextlib.suppress(RuntimeError):  # no loop: a synchronous test
            self._idle_timer = asyncio.get_running_loop().call_later(
                self._idle_s, self._port.idle, self
            )

    async def stop(self, reason: str = "client") -> LiveStopped:
        """End live mode: nothing more is analysed (a scan it started runs on)."""
        self._stopped = True
        self._pending = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return LiveStopped(
            request_id=self.request_id,
            reason="idle" if reason == "idle" else "client",
            frames=self.frames,
            analysed=self.analysed,
            scans=self.scans,
        )

    async def close(self) -> None:
        """The connection ended: stop, and let scans being started finish starting."""
        await self.stop()
        if self._starting:
            await asyncio.wait(set(self._starting), timeout=START_WAIT_S)
        if self._notice_timer is not None:
            self._notice_timer.cancel()
            self._notice_timer = None
