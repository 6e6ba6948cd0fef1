"""Live mode without a socket: latest wins, the rate, drop notices, stop, and the scan."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from protocol.live import CameraFrame
from protocol.messages import (
    MAX_LIVE_FPS,
    Classification,
    DropReason,
    FrameQuality,
    LiveDropped,
    LiveHint,
    LiveScan,
    LiveStart,
    Locale,
    OfficialCategory,
    ScanStart,
)
from protocol.streams import Stream
from server.live.analyser import Analysis, Classified
from server.live.mode import LiveMode
from server.live.quality import Measured, Thumb
from server.vision.errors import ImageRejected, RejectReason

CAN = Classification(
    label="metal_can", name_ko="캔", name_en="can", stream=Stream.METAL,
    category=OfficialCategory(major="재활용폐기물", middle="금속류"), confidence=0.95, model="t",
)


class Analyser:
    """Analyses as the test says: each call waits for a release, if the test holds it."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.gate: asyncio.Event | None = None

    async def analyse(
        self, image: bytes, previous: Thumb | None, last: Classified | None = None
    ) -> Analysis:
        self.seen.append(image)
        if self.gate is not None:
            await self.gate.wait()
        if image == b"junk":
            raise ImageRejected(RejectReason.NOT_AN_IMAGE, "no")
        quality = FrameQuality(brightness=0.5, sharpness=0.6, motion=0.0, coverage=0.4)
        thumb = zero_thumb()
        return Analysis(Measured(quality, (), thumb), CAN, "image/jpeg", 1.0,
                        Classified(thumb, CAN, 0.0))

    def close(self) -> None:
        pass


def zero_thumb() -> Thumb:
    import numpy as np

    return np.zeros((32, 32), dtype=np.float32)


class Port:
    def __init__(self, *, room: bool = True) -> None:
        self.events: list[BaseModel] = []
        self.scans: list[ScanStart] = []
        self.room = room
        self.idled = 0

    def notify(self, event: BaseModel) -> None:
        self.events.append(event)

    def admit_scan(self, request_id: str) -> bool:
        return self.room

    async def start_scan(self, message: ScanStart) -> None:
        self.scans.append(message)

    def idle(self, mode: LiveMode) -> None:
        self.idled += 1

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def frame(n: int, image: bytes = b"img") -> CameraFrame:
    return CameraFrame("live-1", n, 1_700_000_000_000 + n, image)


def mode(analyser: Analyser, port: Port, clock: Clock, **kwargs: Any) -> LiveMode:
    start = LiveStart(request_id="live-1", locale=Locale.EN)
    return LiveMode(start, Locale.KO, analyser, port, clock=clock, **kwargs)  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_latest_wins_while_a_frame_is_analysed() -> None:
    analyser, port, clock = Analyser(), Port(), Clock()
    live = mode(analyser, port, clock)
    analyser.gate = asyncio.Event()
    live.offer(frame(1, b"f1"))
    await settle()
    for n in range(2, 6):  # arrive while frame 1 is analysed
        clock.now += 0.05
        live.offer(frame(n, f"f{n}".encode()))
    analyser.gate.set()
    await settle()
    # Frame 1, then only the newest of those that waited: 2, 3 and 4 were replaced unseen.
    assert analyser.seen == [b"f1", b"f5"]
    hints = port.of(LiveHint)
    assert [(h.frame, h.skipped) for h in hints] == [(1, 0), (5, 3)]
    assert hints[0].captured_ms == 1_700_000_000_001
    assert hints[0].name == "can" and "Empty and rinse it." in hints[0].text
    await live.close()


async def test_frames_over_the_rate_or_out_of_order_are_dropped_with_one_notice() -> None:
    analyser, port, clock = Analyser(), Port(), Clock()
    live = mode(analyser, port, clock)
    analyser.gate = asyncio.Event()  # hold the analysis: only the counting is looked at
    for n in range(1, 31):  # 30 frames within one second
        live.offer(frame(n))
        clock.now += 0.01
    live.offer(frame(3))  # a number already seen
    notices = port.of(LiveDropped)
    # The first drop is told at once; the others are summed for the next notice, a second on.
    assert len(notices) == 1 and notices[0].counts == {DropReason.RATE: 1}
    await asyncio.sleep(1.1)
    clock.now += 1.1
    notices = port.of(LiveDropped)
    assert len(notices) == 2
    assert notices[1].counts == {
        DropReason.RATE: 30 - MAX_LIVE_FPS - 1, DropReason.OUT_OF_ORDER: 1,
    }
    assert live.frames == MAX_LIVE_FPS
    # A second later the window has room again.
    live.offer(frame(40))
    assert live.frames == MAX_LIVE_FPS + 1
    await live.close()


async def test_a_frame_that_is_not_an_image_is_dropped_and_the_next_is_analysed() -> None:
    analyser, port, clock = Analyser(), Port(), Clock()
    live = mode(analyser, port, clock)
    live.offer(frame(1, b"junk"))
    await settle()
    clock.now += 0.2
    live.offer(frame(2))
    await settle()
    assert [n.counts for n in port.of(LiveDropped)] == [{DropReason.NOT_IMAGE: 1}]
    assert [h.frame for h in port.of(LiveHint)] == [2]
    await live.close()


async def test_a_steady_item_is_scanned_once_with_its_best_frame() -> None:
    analyser, port, clock = Analyser(), Port(), Clock()
    live = mode(analyser, port, clock)
    for n in range(1, 10):
        live.offer(frame(n, f"f{n}".encode()))
        await settle()
        clock.now += 0.25
    [scan] = port.scans
    [told] = port.of(LiveScan)
    assert scan.request_id == told.scan_request_id == "live-1:1"
    assert scan.locale is Locale.EN and scan.image.kind == "inline"
    assert scan.image.decode() == f"f{told.frame}".encode()
    assert port.of(LiveHint)[-1].steady == 1.0 and live.scans == 1
    stopped = await live.stop()
    assert (stopped.frames, stopped.analysed, stopped.scans) == (9, 9, 1)


async def test_no_room_for_a_scan_tries_again_on_the_next_steady_frame() -> None:
    analyser, port, clock = Analyser(), Port(room=False), Clock()
    live = mode(analyser, port, clock)
    for n in range(1, 6):
        live.offer(frame(n))
        await settle()
        clock.now += 0.25
    assert port.scans == [] and port.of(LiveScan) == []
    port.room = True
    live.offer(frame(6))
    await settle()
    assert [s.request_id for s in port.scans] == ["live-1:1"]
    await live.close()


async def test_a_stop_while_a_scan_starts_lets_it_start() -> None:
    """A stop during the scan's budget check must not cancel it: the slot was taken and
    live.scan sent, so the scan must get its scan.accepted or its error."""

    class SlowPort(Port):
        async def start_scan(self, message: ScanStart) -> None:
            await asyncio.sleep(0.2)  # the limiter's round trip
            await super().start_scan(message)

    analyser, port, clock = Analyser(), SlowPort(), Clock()
    live = mode(analyser, port, clock)
    for n in range(1, 5):
        live.offer(frame(n))
        await settle()
        clock.now += 0.25
    assert len(port.of(LiveScan)) == 1 and port.scans == []
    await live.stop()
    await live.close()
    assert [s.request_id for s in port.scans] == ["live-1:1"]


async def test_after_stop_nothing_is_analysed_and_frames_are_counted_as_stopped() -> None:
    analyser, port, clock = Analyser(), Port(), Clock()
    live = mode(analyser, port, clock)
    analyser.gate = asyncio.Event()
    live.offer(frame(1))
    await settle()
    live.offer(frame(2))
    stopped = await live.stop()
    assert stopped.reason == "client" and stopped.analysed == 0
    analyser.gate.set()
    live.offer(frame(3))
    await settle()
    assert port.of(LiveHint) == []
    assert port.of(LiveDropped)[-1].counts == {DropReason.STOPPED: 1}
    await live.close()


async def test_live_mode_ends_itself_without_frames() -> None:
    analyser, port, clock = Analyser(), Port(), Clock()
    live = mode(analyser, port, clock, idle_s=0.2)
    live.offer(frame(1))
    await asyncio.sleep(0.1)
    live.offer(frame(2))  # re-arms the timer
    await asyncio.sleep(0.15)
    assert port.idled == 0
    await asyncio.sleep(0.2)
    assert port.idled == 1
    await live.close()


@pytest.mark.parametrize("locale", [Locale.KO, Locale.EN])
def test_hints_speak_the_locale(locale: Locale) -> None:
    from protocol.messages import LiveIssue
    from server.live.hints import hint_text

    dark = hint_text(locale, name=None, stream=None, issues=[LiveIssue.TOO_DARK, LiveIssue.MOVING])
    pet = hint_text(locale, name="PET", stream=Stream.CLEAR_PET, issues=[])
    if locale is Locale.KO:
        assert dark.startswith("너무 어두워요") and pet.startswith("PET인가요?")
        assert "라벨" in pet
    else:
        assert dark.startswith("Too dark") and "label" in pet
