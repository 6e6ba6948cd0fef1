"""Hostile frames over a real WebSocket: refused with an error event, the session lives on."""

from __future__ import annotations

import json
import time

import pytest
import websockets

from tests.conftest import Stack
from tests.support.client import CoachClient

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.parametrize("stack", ["embedded"], indirect=True),
]


async def test_a_thousand_deep_frame_is_an_error_and_the_session_lives_on(
    stack: Stack, guest_token: str
) -> None:
    client = CoachClient(stack.ws_url, guest_token)
    assert (await client.connect())["type"] == "session.ready"
    try:
        await client.send('{"type": "ping", "x": ' + "[" * 1_000 + "]" * 1_000 + "}")
        event = await client.recv()
        assert event["type"] == "error" and event["code"] == "invalid_message", event
        assert "nested deeper" in event["message"]
        events = await client.run_scan(location={"lat": 37.5665, "lon": 126.978})
        assert events[-1]["status"] == "completed"
        await client.send({"type": "scan.start", "request_id": client.next_id(),
                           "image": {"kind": "upload", "key": "k"},
                           "location": {"lat": "37.5", "lon": 126.9}})
        event = await client.recv()
        assert event["code"] == "invalid_message" and "location.lat" in event["message"]
    finally:
        await client.close()


async def test_a_huge_frame_before_session_start_is_refused_fast(
    stack: Stack, guest_token: str
) -> None:
    frame = '{"type":"session.start",' + ",".join(f'"{i:x}":0' for i in range(140_000)) + "}"
    async with websockets.connect(stack.ws_url, max_size=8 * 1024 * 1024) as ws:
        started = time.monotonic()
        await ws.send(frame)
        event = json.loads(await ws.recv())
        elapsed = time.monotonic() - started
        assert event["type"] == "error" and event["code"] == "message_too_large", event
        assert event["seq"] == 0
        # Most of this is moving 1.4 MB over loopback; parsing it took ~380 ms before.
        assert elapsed < 1.0, elapsed
        await ws.send(json.dumps({"type": "session.start", "token": guest_token}))
        ready = json.loads(await ws.recv())
        assert ready["type"] == "session.ready"


async def test_garbage_in_a_row_closes_with_1008(stack: Stack) -> None:
    async with websockets.connect(stack.ws_url) as ws:
        for _ in range(10):
            await ws.send("{not json")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            for _ in range(11):
                event = json.loads(await ws.recv())
                assert event["code"] == "invalid_json"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_hostile_frames_do_not_stall_another_users_scans(
    stack: Stack, guest_token: str
) -> None:
    """Four clients send what stalled the server before the limits (a 1.5 MiB pre-auth frame
    of keys, a 1,000-deep frame, garbage) while another user scans. Loosely bounded here (the
    suite runs on a busy machine); bench/hostile_stall.py measures it (docs/benchmarks.md)."""
    import asyncio

    huge = '{"type":"session.start",' + ",".join(f'"{i:x}":0' for i in range(150_000)) + "}"
    deep = '{"type": "ping", "x": ' + "[" * 1_000 + "]" * 1_000 + "}"
    until = time.monotonic() + 3.0
    answered = 0

    async def attack() -> None:
        nonlocal answered
        while time.monotonic() < until:
            try:
                async with websockets.connect(stack.ws_url, max_size=None) as ws:
                    await ws.send(huge)
                    await ws.recv()
                    await ws.send(deep)
                    await ws.recv()
                    answered += 2
                    while time.monotonic() < until:
                        await ws.send("{not json")
                        await ws.recv()
                        answered += 1
            except websockets.ConnectionClosed:
                continue

    client = CoachClient(stack.ws_url, guest_token)
    assert (await client.connect())["type"] == "session.ready"
    latencies: list[float] = []

    async def scan_meanwhile() -> None:
        while time.monotonic() < until and len(latencies) < 8:  # within a guest's budget
            started = time.monotonic()
            events = await client.run_scan()
            assert events[-1]["type"] == "scan.done", events[-1]
            assert events[-1]["status"] == "completed"
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.3)

    try:
        await asyncio.gather(scan_meanwhile(), *(attack() for _ in range(4)))
    finally:
        await client.close()
    assert answered > 20  # the attack really ran
    assert latencies and max(latencies) < 1.5, latencies
