"""Live camera mode over the WebSocket, in both modes (docs/protocol.md section 15)."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from protocol.live import encode_frame
from protocol.messages import MAX_LIVE_FPS, MAX_LIVE_FRAME_BYTES
from tests.conftest import Stack
from tests.support.client import CoachClient

pytestmark = pytest.mark.timeout(180)

TRASHNET = Path(__file__).resolve().parents[3] / "shared" / "data" / "trashnet"
#: A photo the embedded classifier is sure of (a brown glass bottle, 0.998).
PHOTO = TRASHNET / "glass" / "glass1.jpg"


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    if not PHOTO.exists():
        pytest.skip(f"{PHOTO} not found")
    out = io.BytesIO()
    Image.open(PHOTO).convert("RGB").resize((640, 480)).save(out, "JPEG", quality=75)
    return out.getvalue()


async def send_frame(client: CoachClient, rid: str, number: int, image: bytes) -> None:
    assert client.ws is not None
    await client.ws.send(encode_frame(rid, number, int(time.time() * 1000), image))


async def start_live(client: CoachClient, rid: str = "live-1") -> dict[str, Any]:
    await client.send({"type": "live.start", "request_id": rid, "locale": "en",
                       "location": {"lat": 37.5665, "lon": 126.978}})
    started = await client.recv()
    assert started["type"] == "live.started", started
    assert started["max_frame_bytes"] == MAX_LIVE_FRAME_BYTES
    assert started["max_fps"] == MAX_LIVE_FPS
    return started


async def hold_still(client: CoachClient, jpeg: bytes, rid: str, first: int, count: int,
                     every_s: float = 0.15) -> None:
    for n in range(first, first + count):
        await send_frame(client, rid, n, jpeg)
        await asyncio.sleep(every_s)


async def test_a_held_item_gets_hints_then_one_full_scan(client: CoachClient, jpeg: bytes) -> None:
    await start_live(client)
    sender = asyncio.create_task(hold_still(client, jpeg, "live-1", 1, 40))
    events = await client.recv_until(
        lambda e: e["type"] == "scan.done" and e["request_id"] == "live-1:1", timeout=60
    )
    hints = [e for e in events if e["type"] == "live.hint"]
    assert hints, "no live.hint before the scan"
    first = hints[0]
    assert first["request_id"] == "live-1" and first["frame"] >= 1
    assert first["label"] == "glass_bottle" and first["stream"] == "glass"
    assert first["text"].startswith(first["name"])
    assert [h["frame"] for h in hints] == sorted({h["frame"] for h in hints})
    [told] = [e for e in events if e["type"] == "live.scan"]
    assert told["scan_request_id"] == "live-1:1"
    scan = [e for e in events if e.get("request_id") == "live-1:1"]
    kinds = [e["type"] for e in scan]
    assert kinds[0] == "scan.accepted" and "scan.classified" in kinds
    assert "coaching.done" in kinds and "bins.suggested" in kinds
    assert scan[-1]["status"] == "completed"
    assert all(e["seq"] > 0 for e in scan) and all(h["seq"] == 0 for h in hints)
    # Held on: more hints, no second scan; they say the guidance was shown.
    await sender
    later = await client.recv_until(
        lambda e: e["type"] == "live.hint" and e["frame"] == 40, timeout=30
    )
    assert not [e for e in later if e["type"] in ("live.scan", "scan.accepted")]
    assert later[-1]["steady"] == 1.0 and "Guidance shown" in later[-1]["text"]
    await client.send({"type": "live.stop", "request_id": "live-1"})
    stopped = await client.recv_until(lambda e: e["type"] == "live.stopped")
    assert stopped[-1]["reason"] == "client" and stopped[-1]["scans"] == 1
    assert stopped[-1]["frames"] == 40


async def test_a_frame_storm_is_dropped_not_queued(client: CoachClient, jpeg: bytes) -> None:
    await start_live(client)
    for n in range(1, 201):  # 200 frames as fast as the socket takes them
        await send_frame(client, "live-1", n, jpeg)
    await client.send({"type": "ping", "request_id": "after-storm"})
    started = time.monotonic()
    events = await client.recv_until(lambda e: e["type"] == "pong", timeout=20)
    # The session stayed responsive: what was not taken was dropped, not queued.
    assert time.monotonic() - started < 10
    await asyncio.sleep(1.2)  # the next drop notice
    await client.send({"type": "live.stop", "request_id": "live-1"})
    events += await client.recv_until(lambda e: e["type"] == "live.stopped", timeout=20)
    dropped = sum(e["counts"].get("rate", 0) for e in events if e["type"] == "live.dropped")
    stopped = events[-1]
    assert stopped["frames"] + dropped == 200
    assert stopped["frames"] <= MAX_LIVE_FPS * 3  # the storm lasted well under 3 s
    hints = [e for e in events if e["type"] == "live.hint"]
    assert hints and stopped["analysed"] <= stopped["frames"]
    # Every frame taken was either analysed or replaced by a newer one (latest wins).
    assert stopped["analysed"] + sum(h["skipped"] for h in hints) <= stopped["frames"]


async def test_bad_frames_get_a_notice_or_an_error_and_the_session_lives_on(
    client: CoachClient, jpeg: bytes
) -> None:
    assert client.ws is not None
    # Binary outside live mode: refused with a clear error.
    await send_frame(client, "live-1", 1, jpeg)
    error = await client.recv()
    assert error["type"] == "error" and error["code"] == "invalid_frame"
    assert "live.start" in error["message"]
    await client.ws.send(b"\x07garbage")
    assert (await client.recv())["code"] == "invalid_frame"
    await start_live(client)
    await client.send({"type": "live.start", "request_id": "live-2"})
    error = await client.recv()
    assert error["code"] == "live_already_active" and error["request_id"] == "live-2"
    # Too large, not an image: dropped unseen and told in one notice.
    await send_frame(client, "live-1", 2, b"\xff" * (MAX_LIVE_FRAME_BYTES + 1))
    await send_frame(client, "live-1", 3, b"this is not a jpeg")
    events = await client.recv_until(
        lambda e: e["type"] == "live.dropped" and "not_image" in e["counts"], timeout=10
    )
    counts: dict[str, int] = {}
    for e in client.events:
        if e["type"] == "live.dropped":
            for k, v in e["counts"].items():
                counts[k] = counts.get(k, 0) + v
    assert counts == {"too_large": 1, "not_image": 1}, events
    # A frame for another id is an error; a frame after live.stop is a quiet drop.
    await send_frame(client, "other", 4, jpeg)
    assert (await client.recv())["code"] == "invalid_frame"
    await client.send({"type": "live.stop", "request_id": "live-1"})
    await client.recv_until(lambda e: e["type"] == "live.stopped")
    await send_frame(client, "live-1", 5, jpeg)
    await client.send({"type": "live.stop", "request_id": "live-1"})
    events = await client.recv_until(lambda e: e["type"] == "error", timeout=10)
    assert events[-1]["code"] == "live_not_active"
    await asyncio.sleep(1.1)
    await client.send({"type": "ping", "request_id": "p"})
    events = await client.recv_until(lambda e: e["type"] == "pong")
    assert any(e["type"] == "live.dropped" and e["counts"] == {"stopped": 1} for e in events)
    # And live mode starts again.
    await start_live(client, "live-3")


async def test_stop_mid_scan_lets_the_scan_finish(client: CoachClient, jpeg: bytes) -> None:
    await start_live(client)
    sender = asyncio.create_task(hold_still(client, jpeg, "live-1", 1, 60, every_s=0.1))
    await client.recv_until(lambda e: e["type"] == "live.scan", timeout=60)
    sender.cancel()
    await client.send({"type": "live.stop", "request_id": "live-1"})
    events = await client.recv_until(
        lambda e: e["type"] == "scan.done" and e["request_id"] == "live-1:1", timeout=30
    )
    assert events[-1]["status"] == "completed"
    if "live.stopped" not in [e["type"] for e in events]:  # the scan may end first
        events += await client.recv_until(lambda e: e["type"] == "live.stopped")
    kinds = [e["type"] for e in events]
    assert "coaching.done" in kinds
    assert [e["scans"] for e in events if e["type"] == "live.stopped"] == [1]


async def test_resume_during_live_mode_replays_the_scan_and_live_mode_is_off(
    stack: Stack, guest_token: str, jpeg: bytes
) -> None:
    client = CoachClient(stack.ws_url, guest_token)
    await client.connect()
    await start_live(client)
    sender = asyncio.create_task(hold_still(client, jpeg, "live-1", 1, 60, every_s=0.1))
    await client.recv_until(lambda e: e["type"] == "scan.accepted", timeout=60)
    sender.cancel()
    assert client.ws is not None
    await client.ws.close()  # dropped mid-scan
    ready = await client.connect(resume=True)
    assert ready["resumed"] is True
    # The rest of the scan arrives exactly once (CoachClient checks seq has no gap or repeat).
    events = await client.recv_until(
        lambda e: e["type"] == "scan.done" and e["request_id"] == "live-1:1", timeout=30
    )
    assert events[-1]["status"] == "completed"
    # Live mode belonged to the old connection.
    await send_frame(client, "live-1", 99, jpeg)
    assert (await client.recv())["code"] == "invalid_frame"
    await start_live(client, "live-2")
    await client.close()
