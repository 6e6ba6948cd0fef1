"""Connection caps per client address: a socket that never signs in costs its holder nothing,
so one address may hold only a few of those (and a generous number in all: phones on a
carrier share addresses)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from server.ws.registry import Connections
from tests.conftest import ServerThread, make_settings, session_settings


class Conn:
    def shutdown(self) -> None: ...

    def account_deleted(self, user_id: str) -> None: ...


def test_an_address_holds_few_unsigned_and_more_signed_in_connections() -> None:
    registry = Connections(per_address=3, unauthenticated_per_address=2)
    a, b, c, d = Conn(), Conn(), Conn(), Conn()
    assert registry.add(a, "10.0.0.1") and registry.add(b, "10.0.0.1")
    assert not registry.add(c, "10.0.0.1")  # two unsigned already
    assert registry.add(c, "10.0.0.2")  # another address is not affected
    registry.signed_in(a)
    assert registry.add(d, "10.0.0.1")  # a signed in: room for one more unsigned
    registry.signed_in(b)
    registry.signed_in(d)
    assert not registry.add(Conn(), "10.0.0.1")  # three in all
    registry.discard(a)
    assert registry.add(Conn(), "10.0.0.1")
    assert len(registry) == 4
    # Discarding twice, or what was never counted, changes nothing.
    registry.discard(a)
    registry.discard(Conn())
    assert len(registry) == 4


def test_an_unknown_address_is_not_capped() -> None:
    registry = Connections(per_address=1, unauthenticated_per_address=1)
    assert all(registry.add(Conn(), None) for _ in range(5))


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = make_settings(
        "embedded", Path(tmp_path_factory.mktemp("caps")),
        session=session_settings(max_connections_per_address=3,
                                 max_unauthenticated_per_address=2),
    )
    server = ServerThread(settings)
    server.start()
    yield server
    server.stop()


async def test_the_server_closes_what_is_over_the_cap_with_1013(capped: ServerThread) -> None:
    base = f"http://127.0.0.1:{capped.settings.port}"
    url = base.replace("http", "ws") + "/api/v1/coach/ws"
    async with httpx.AsyncClient(base_url=base) as http:
        token = (await http.post("/api/v1/auth/guest")).json()["access_token"]
    first = await websockets.connect(url)
    second = await websockets.connect(url)
    third = await websockets.connect(url)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(third.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert "too many connections" in closed.value.rcvd.reason
    # Signed in, a connection no longer counts as unsigned: another may open.
    await first.send(json.dumps({"type": "session.start", "token": token}))
    assert json.loads(await first.recv())["type"] == "session.ready"
    fourth = await websockets.connect(url)
    await fourth.send(json.dumps({"type": "ping", "request_id": "p"}))
    # Taken (not closed with 1013): it is answered, here with the error for a ping before
    # session.start.
    assert json.loads(await asyncio.wait_for(fourth.recv(), 5))["type"] == "error"
    # A closed connection frees its place.
    await second.close()
    await asyncio.sleep(0.2)
    fifth = await websockets.connect(url)
    await fifth.send(json.dumps({"type": "session.start", "token": token}))
    assert json.loads(await fifth.recv())["type"] == "session.ready"
    for ws in (first, fourth, fifth):
        await ws.close()
