"""Connection lifetime rules: slow clients, the lifetime cap, and server shutdown.

These need servers with their own session settings, so each test starts one (embedded; the
connection code is the same in both modes).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from server.auth.config import AccountsSettings
from tests.conftest import ServerThread, make_settings, session_settings
from tests.support.client import CoachClient

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    servers: list[ServerThread] = []

    def start(accounts: AccountsSettings | None = None, **session: float | int) -> ServerThread:
        settings = make_settings("embedded", tmp_path, session=session_settings(**session))
        if accounts is not None:
            settings = settings.model_copy(update={"accounts": accounts})
        server = ServerThread(settings)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.thread.is_alive():
            server.stop()


async def connect(server: ServerThread, **kwargs: object) -> CoachClient:
    base = f"http://127.0.0.1:{server.settings.port}"
    async with httpx.AsyncClient(base_url=base) as http:
        token = (await http.post("/api/v1/auth/guest")).json()["access_token"]
    client = CoachClient(base.replace("http", "ws") + "/api/v1/coach/ws", token)
    await client.connect()
    return client


async def test_slow_client_is_closed_with_1013_and_resumes_without_loss(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(send_queue_size=8)
    client = await connect(server)
    assert client.ws is not None
    # Stop reading: shrink our receive buffer so the server's writes back up quickly.
    sock = client.ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.ws.transport.pause_reading()
    rid = await client.scan(b"MANY")
    await asyncio.sleep(2.0)
    client.ws.transport.resume_reading()
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    ready = await client.connect(resume=True)
    assert ready["resumed"] is True
    await client.recv_until(lambda e: e["type"] == "scan.done", timeout=30)
    deltas = [e["index"] for e in client.events
              if e["type"] == "coaching.delta" and e["request_id"] == rid]
    assert deltas == list(range(1500))
    await client.close()


async def test_lifetime_cap_warns_then_closes(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(max_lifetime_s=1.5, expiry_warning_s=1.0)
    client = await connect(server)
    warning = await client.recv(timeout=5)
    assert warning["type"] == "session.expiring" and warning["seq"] == 0
    assert client.ws is not None
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await client.ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


async def test_idle_connection_is_closed(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(idle_timeout_s=1.0)
    client = await connect(server)
    assert client.ws is not None
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(client.ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


async def test_shutdown_flushes_in_flight_events_then_closes_with_1012(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server()
    client = await connect(server)
    rid = await client.scan(b"SLOW")
    await client.recv_until(lambda e: e["type"] == "coaching.delta")
    server.server.should_exit = True
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    done = [e for e in client.events if e["type"] == "scan.done" and e["request_id"] == rid]
    assert done and done[0]["status"] == "completed"
    await asyncio.to_thread(server.thread.join, 20)


async def test_the_scan_limit_holds_across_a_resume(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(max_concurrent_scans=2)
    client = await connect(server)
    first = await client.scan(b"SLOW")
    second = await client.scan(b"SLOW")
    await client.recv_until(lambda e: e["type"] == "coaching.delta" and e["request_id"] == second)
    assert client.ws is not None
    client.ws.transport.abort()  # the network drops; both scans go on
    client.ws = None
    ready = await client.connect(resume=True)
    assert ready["type"] == "session.ready" and ready["resumed"] is True
    third = await client.scan()
    events = await client.recv_until(
        lambda e: e.get("request_id") == third and e["type"] in ("error", "scan.accepted")
    )
    assert events[-1]["type"] == "error" and events[-1]["code"] == "too_many_scans"
    await client.recv_until(lambda e: e["type"] == "scan.done" and e["request_id"] == first)
    # One of the two has ended: there is room for one more.
    assert (await client.run_scan())[-1]["status"] == "completed"
    await client.close()


async def test_budget_spent_elsewhere_meanwhile_fails_the_scan_before_it_runs(make_server) -> None:  # type: ignore[no-untyped-def]
    # With room to spare, a scan does not wait for the limiter before scan.accepted; if the
    # user's other sessions spent the budget in the meantime, the scan ends as failed
    # (rate_limited) without running.
    server = make_server(accounts=AccountsSettings(scans_per_minute=3, scans_per_day=100))
    phone = await connect(server)
    tablet = CoachClient(phone.url, phone.token)  # the same user, another session
    await tablet.connect()
    for _ in range(3):
        assert (await tablet.run_scan())[-1]["status"] == "completed"
    events = await phone.run_scan()
    kinds = [e["type"] for e in events]
    assert "scan.accepted" in kinds and "scan.classified" not in kinds
    done = events[-1]
    assert done["type"] == "scan.done" and done["status"] == "failed"
    assert done["error"]["code"] == "rate_limited" and done["error"]["retryable"] is True
    assert phone.budgets["scans"]["remaining_minute"] == 0
    # Known to be spent now: the next scan is refused up front, as always.
    refused = await phone.run_scan()
    assert refused[-1]["type"] == "error" and refused[-1]["code"] == "rate_limited"
    await phone.close()
    await tablet.close()


async def test_rate_limit_is_reported_before_it_refuses(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(accounts=AccountsSettings(scans_per_minute=2, scans_per_day=100))
    client = await connect(server)
    assert client.ready is not None
    assert (await client.run_scan())[-1]["status"] == "completed"
    assert client.budgets["scans"]["remaining_minute"] == 1
    assert (await client.run_scan())[-1]["status"] == "completed"
    assert client.budgets["scans"]["remaining_minute"] == 0
    events = await client.run_scan()
    assert events[-1]["type"] == "error" and events[-1]["code"] == "rate_limited"
    assert events[-1]["retryable"] is True
    # The session lives on: chat has its own budget.
    await client.send({"type": "ping"})
    assert (await client.recv())["type"] == "pong"
    await client.close()
