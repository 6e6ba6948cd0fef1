"""Bytes of unfinished WebSocket messages are budgeted per client address and in all
(``server.ws_inbound``, issue 13): a probe held 240 MiB with half-sent frames.

The server is the real one, configured as ``wastecoach serve`` configures uvicorn, with a
3 MiB budget per address. Other client addresses are other loopback addresses.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from server.settings import HttpSettings
from server.ws_inbound import CLOSE_CODE, InboundBudget
from tests.conftest import ServerThread, make_settings

MiB = 1024 * 1024
PER_ADDRESS = 3 * MiB
#: A frame's header says this many bytes; the client sends all but the end of it.
DECLARED = 1_500_000
SENT = 1_200_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = make_settings("embedded", Path(tmp_path_factory.mktemp("inbound"))).model_copy(
        update={
            "log_level": "warning",
            "trusted_proxies": "127.0.0.9",
            "http": HttpSettings(max_unread_bytes_per_address=PER_ADDRESS,
                                 max_unread_bytes=64 * MiB),
        }
    )
    server = ServerThread(settings, as_served=True)
    server.start()
    yield server
    server.stop()


def half_frame() -> bytes:
    """A masked text frame's header for DECLARED bytes, and SENT bytes of its payload."""
    header = bytes([0x81, 0x80 | 127]) + DECLARED.to_bytes(8, "big") + os.urandom(4)
    return header + b"x" * SENT


async def connect(port: int, source: str) -> websockets.ClientConnection:
    return await websockets.connect(
        f"ws://127.0.0.1:{port}/api/v1/coach/ws", max_size=None,
        family=2, local_addr=(source, 0),
    )


async def held(ws: websockets.ClientConnection) -> None:
    ws.transport.write(half_frame())
    await asyncio.sleep(0.3)


async def closed_with(ws: websockets.ClientConnection, timeout: float = 10) -> int | None:
    try:
        async with asyncio.timeout(timeout):
            await ws.wait_closed()
    except TimeoutError:
        return None
    return ws.close_code


async def test_an_address_over_its_budget_loses_the_socket_that_went_over(
    server: ServerThread,
) -> None:
    port = server.settings.port
    first = await connect(port, "127.0.0.2")
    second = await connect(port, "127.0.0.2")
    third = await connect(port, "127.0.0.2")
    try:
        await held(first)
        await held(second)  # 2.4 MB: within 3 MiB
        await held(third)   # 3.6 MB: over
        assert await closed_with(third) == CLOSE_CODE
        assert first.close_code is None and second.close_code is None
        # Another address is not affected.
        other = await connect(port, "127.0.0.3")
        await other.send(json.dumps({"type": "ping"}))
        answer = json.loads(await asyncio.wait_for(other.recv(), 10))
        assert answer["code"] == "not_authenticated"
        await other.close()
        # What a closed socket held is given back: the address may hold it again.
        await first.close()
        await asyncio.sleep(0.3)
        fourth = await connect(port, "127.0.0.2")
        await held(fourth)
        assert fourth.close_code is None
        await fourth.close()
    finally:
        for ws in (first, second, third):
            await ws.close()


def test_the_budget_counts_per_address_and_in_all() -> None:
    budget = InboundBudget(
        HttpSettings(max_unread_bytes_per_address=3 * MiB, max_unread_bytes=5 * MiB),
        "10.0.0.1",
    )
    a, b, proxy = budget.key("192.0.2.1"), budget.key("192.0.2.2"), budget.key("10.0.0.1")
    assert proxy is None
    assert budget.change(a, 2 * MiB) and budget.change(b, 2 * MiB)
    assert not budget.change(a, 2 * MiB)  # the address: 4 MiB over 3
    assert budget.change(a, -2 * MiB) and budget.held(a) == 2 * MiB
    assert not budget.change(proxy, 2 * MiB)  # a trusted proxy counts in all: 6 over 5
    assert budget.change(proxy, -2 * MiB)
    assert budget.change(a, -2 * MiB) and budget.held(a) == 0 and budget.total == 2 * MiB
    # An IPv6 client is counted by its /64.
    assert budget.key("2001:db8::1") == budget.key("2001:db8::ffff")
