"""What an idle, signed-in connection keeps on the server (issue 17: ten thousand of them in
one process, under 20 KiB each; docs/benchmarks.md, "Idle sessions").

The server is the real one, configured as ``wastecoach serve`` configures uvicorn (our
WebSocket protocol, ``server.ws_inbound``). What is looked at lives on the server's loop, in
its thread: each look runs there (``on_server_loop``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import types
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import websockets
from websockets.datastructures import Headers

from server.ws.connection import Connection
from server.ws_inbound import BudgetedWebSocketProtocol
from tests.conftest import ServerThread, make_settings, session_settings
from tests.support.client import CoachClient

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = make_settings("embedded", Path(tmp_path_factory.mktemp("idle")))
    server = ServerThread(settings.model_copy(update={"log_level": "warning"}), as_served=True)
    server.start()
    yield server
    server.stop()


async def signed_in(server: ServerThread) -> tuple[CoachClient, Connection]:
    base = f"http://127.0.0.1:{server.settings.port}"
    async with httpx.AsyncClient(base_url=base) as http:
        token = (await http.post("/api/v1/auth/guest")).json()["access_token"]
    client = CoachClient(base.replace("http", "ws") + "/api/v1/coach/ws", token)
    ready = await client.connect()
    [connection] = [c for c in server.app.state.connections._open
                    if isinstance(c, Connection) and c.machine.session_id == ready["session_id"]]
    return client, connection


async def on_server_loop(connection: Connection, look: Callable[[], Awaitable[T]]) -> T:
    assert connection._reader_task is not None
    loop = connection._reader_task.get_loop()
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(look(), loop))


def protocol_of(connection: Connection) -> BudgetedWebSocketProtocol:
    """The socket's uvicorn protocol: Starlette's WebSocket receives through its method."""
    protocol = connection.ws._receive.__self__  # type: ignore[attr-defined]
    assert isinstance(protocol, BudgetedWebSocketProtocol)
    return protocol


async def ws_tasks() -> list[str]:
    await asyncio.sleep(0.2)  # what the last frame started has run
    return sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("ws-"))


async def pong(client: CoachClient) -> None:
    assert client.ws is not None
    await client.ws.send('{"type":"ping"}')
    await client.recv_until(lambda e: e["type"] == "pong", timeout=5)


async def test_an_idle_connection_is_its_reader_and_a_timer(server: ServerThread) -> None:
    client, connection = await signed_in(server)
    try:
        assert await on_server_loop(connection, ws_tasks) == ["ws-reader"]
        assert connection._timer is not None and not connection._timer.cancelled()
        # A frame answered: the writer ran for it, and ended with its queue empty.
        await pong(client)
        assert await on_server_loop(connection, ws_tasks) == ["ws-reader"]
        assert connection.queue.empty()
    finally:
        await client.close()


def held_headers(root: object) -> list[Headers]:
    """The non-empty websockets ``Headers`` reachable from ``root``, not through what the whole
    process shares (modules, classes, functions, loggers, the loop)."""
    shared = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
              logging.Logger, logging.Manager, asyncio.AbstractEventLoop)
    found: list[Headers] = []
    seen = {id(root)}
    todo = [root]
    while todo:
        for ref in gc.get_referents(todo.pop()):
            if id(ref) in seen or isinstance(ref, shared):
                continue
            seen.add(id(ref))
            if isinstance(ref, Headers):
                if list(ref.raw_items()):
                    found.append(ref)
                continue
            todo.append(ref)
    return found


async def test_the_handshake_headers_go_once_the_socket_is_open(server: ServerThread) -> None:
    client, connection = await signed_in(server)
    try:
        protocol = protocol_of(connection)
        # websockets' parser is a generator for the socket's whole life, and the handshake's
        # request is a local of its frame: what it holds is what the socket holds.
        assert held_headers(protocol.conn) == []
        # The scope keeps them, as bytes: the application may read them.
        headers = dict(protocol.scope["headers"])
        assert headers[b"upgrade"].lower() == b"websocket"
    finally:
        await client.close()


async def test_writable_is_an_event_only_while_the_transport_is_paused(
    server: ServerThread,
) -> None:
    client, connection = await signed_in(server)
    try:
        protocol = protocol_of(connection)
        assert not isinstance(protocol.writable, asyncio.Event)

        async def pause() -> None:
            protocol.pause_writing()

        async def resume() -> None:
            protocol.resume_writing()

        await on_server_loop(connection, pause)
        assert isinstance(protocol.writable, asyncio.Event)
        # Paused, the server's send waits: the pong does not come.
        assert client.ws is not None
        await client.ws.send('{"type":"ping"}')
        with pytest.raises(TimeoutError):
            await client.recv_until(lambda e: e["type"] == "pong", timeout=0.5)
        await on_server_loop(connection, resume)
        await client.recv_until(lambda e: e["type"] == "pong", timeout=5)
        assert not isinstance(protocol.writable, asyncio.Event)
        await pong(client)
    finally:
        await client.close()


async def test_a_send_waiting_on_a_paused_transport_ends_when_the_peer_goes(
    server: ServerThread,
) -> None:
    client, connection = await signed_in(server)
    protocol = protocol_of(connection)

    async def pause() -> None:
        protocol.pause_writing()

    await on_server_loop(connection, pause)
    assert client.ws is not None
    await client.ws.send('{"type":"ping"}')
    await asyncio.sleep(0.3)  # the writer waits on the paused transport
    client.ws.transport.abort()

    async def gone() -> Any:
        for _ in range(100):
            if connection not in server.app.state.connections._open:
                return True
            await asyncio.sleep(0.05)
        return False

    assert await on_server_loop(connection, gone)
    assert not isinstance(protocol.writable, asyncio.Event)


@pytest.mark.slow
async def test_the_supervision_keeps_the_history_alive_round_after_round(
    tmp_path: Path,
) -> None:
    # A 10 s history: kept alive every 10/3 s, by a keep-alive task that runs the next round.
    settings = make_settings("embedded", tmp_path, session=session_settings(replay_ttl_s=10))
    server = ServerThread(settings.model_copy(update={"log_level": "warning"}))
    server.start()
    try:
        log = server.app.state.session_deps.log
        touched: list[str] = []
        real_touch = log.touch

        async def touch(session_id: str) -> bool:
            touched.append(session_id)
            return bool(await real_touch(session_id))

        log.touch = touch
        client, connection = await signed_in(server)
        try:
            for _ in range(11):
                await pong(client)
                await asyncio.sleep(1)
            assert touched.count(connection.machine.session_id) >= 3
            assert await on_server_loop(connection, ws_tasks) == ["ws-reader"]
        finally:
            await client.close()
    finally:
        server.stop()


async def test_a_fault_in_the_supervision_closes_the_connection_1011(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    # The supervision is a loop callback: what it raises would go to the loop's exception
    # handler, and the connection would live on with no idle timeout, lifetime cap, token
    # expiry, slow-client close or keep-alive. A fault in it must end the connection as a
    # fault in any of its tasks does (endpoint.py: "a bug closes 1011 with a log line").
    client, connection = await signed_in(server)

    def faulty() -> float:
        raise RuntimeError("a fault in the supervision's round")

    async def inject() -> None:
        connection._check = faulty  # type: ignore[method-assign]
        connection._wake()

    try:
        await on_server_loop(connection, inject)
        assert client.ws is not None
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(client.ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        assert any(r.getMessage() == "connection failed" for r in caplog.records)
    finally:
        await client.close()
