"""Half-sent HTTP requests (slow loris, issue 13): a request head has a deadline, and the
connections still sending one are capped per client address and in all
(``server.request_heads``).

The server is the real one, configured as ``wastecoach serve`` configures uvicorn, with a 2 s
deadline. Every client here is on loopback: other client addresses are other loopback
addresses (Linux routes all of 127.0.0.0/8 to ``lo``), and 127.0.0.3 is the trusted proxy.
Timing is asserted loosely (the machine may be loaded): a connection cut at the deadline must
be closed within :data:`MARGIN_S` after it, and one refused at once is told by its answer,
503 rather than the deadline's 408.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import httpx
import pytest
import websockets

from server.request_heads import UnfinishedHeads
from server.settings import HttpSettings
from tests.conftest import ServerThread, make_settings

DEADLINE_S = 2.0
MARGIN_S = 3.0
PER_ADDRESS = 3
TOTAL = 8
PROXY = "127.0.0.3"
HEAD = b"GET /healthz HTTP/1.1\r\nHost: test\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = make_settings("embedded", Path(tmp_path_factory.mktemp("loris"))).model_copy(
        update={
            "log_level": "warning",
            "trusted_proxies": PROXY,
            "http": HttpSettings(head_timeout_s=DEADLINE_S,
                                 max_unfinished_heads_per_address=PER_ADDRESS,
                                 max_unfinished_heads=TOTAL,
                                 # A body's deadline: DEADLINE_S, and nothing for its size.
                                 body_timeout_s=DEADLINE_S,
                                 body_min_bytes_per_s=10**9),
        }
    )
    server = ServerThread(settings, as_served=True)
    server.start()
    yield server
    server.stop()


class Raw:
    """One TCP connection, written and read by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_closed(self, timeout: float) -> bytes:
        """All the server sends until it closes the connection; a reset counts as closed,
        and not being closed within ``timeout`` fails the test."""
        chunks = []
        try:
            async with asyncio.timeout(timeout):
                while chunk := await self.reader.read(65536):
                    chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


@asynccontextmanager
async def raw(port: int, source: str = "127.0.0.1") -> AsyncIterator[Raw]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        yield Raw(reader, writer)
    finally:
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()


async def trickle(conn: Raw, data: bytes) -> None:
    """Send ``data`` a byte every 0.2 s, until the server closes the connection."""
    try:
        for byte in data:
            await conn.send(bytes([byte]))
            await asyncio.sleep(0.2)
    except OSError:
        pass


async def test_a_head_trickled_a_byte_at_a_time_is_cut_at_the_deadline(
    server: ServerThread,
) -> None:
    port = server.settings.port
    async with raw(port) as slow, raw(port) as silent:
        started = time.monotonic()
        answer, quiet, _ = await asyncio.gather(
            slow.until_closed(DEADLINE_S + MARGIN_S),
            silent.until_closed(DEADLINE_S + MARGIN_S),
            trickle(slow, HEAD + b"X-Slow: " + b"a" * 200),  # 46 s at this pace
        )
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert quiet.startswith(b"HTTP/1.1 408 ")  # connected and said nothing
    assert DEADLINE_S / 2 < elapsed < 20  # a deadline, not a refusal; the trickle was cut


async def test_a_keep_alive_connections_next_head_has_the_deadline_too(
    server: ServerThread,
) -> None:
    async with raw(server.settings.port) as conn:
        await conn.send(HEAD + b"\r\n")
        # The next request, trickled right after the first (7 s at this pace).
        answer, _ = await asyncio.gather(
            conn.until_closed(DEADLINE_S + MARGIN_S), trickle(conn, HEAD)
        )
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 408 " in answer


async def test_finished_heads_are_not_cut(server: ServerThread) -> None:
    port = server.settings.port
    base = f"http://127.0.0.1:{port}"
    # A keep-alive connection idle past the deadline after its first request: its second
    # request is answered on the same connection (uvicorn's keep-alive timeout is 5 s).
    async with raw(port) as conn:
        await conn.send(HEAD + b"\r\n")
        first = await asyncio.wait_for(conn.reader.readuntil(b"}"), MARGIN_S)
        await asyncio.sleep(DEADLINE_S + 1)
        await conn.send(HEAD + b"Connection: close\r\n\r\n")
        second = await conn.until_closed(MARGIN_S)
    assert first.startswith(b"HTTP/1.1 200 ") and second.startswith(b"HTTP/1.1 200 ")
    # A WebSocket lives on past the deadline: its head was complete.
    async with httpx.AsyncClient(base_url=base) as http:
        token = (await http.post("/api/v1/auth/guest")).json()["access_token"]
    async with websockets.connect(base.replace("http", "ws") + "/api/v1/coach/ws") as ws:
        await ws.send(json.dumps({"type": "session.start", "token": token}))
        assert json.loads(await ws.recv())["type"] == "session.ready"
        await asyncio.sleep(DEADLINE_S + 1)
        await ws.send(json.dumps({"type": "ping", "request_id": "p"}))
        async with asyncio.timeout(MARGIN_S):
            while json.loads(await ws.recv())["type"] != "pong":
                pass  # events sent after session.ready


async def test_a_body_trickled_after_its_head_is_cut_and_counted(server: ServerThread) -> None:
    """A complete head, then a body a byte at a time (R-U-Dead-Yet): the route waits for the
    body, so the connection is held; it counts as unfinished, and is cut at its deadline."""
    port = server.settings.port
    body = json.dumps({"refresh_token": "x" * 200}).encode()
    head = (b"POST /api/v1/auth/refresh HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    async with raw(port) as a, raw(port) as b, raw(port) as c, raw(port) as extra:
        for conn in (a, b, c):
            await conn.send(head + body[:5])
        # Three requests with their bodies not in: the address's fourth is refused.
        assert (await extra.until_closed(MARGIN_S)).startswith(b"HTTP/1.1 503 ")
        started = time.monotonic()
        answers = await asyncio.gather(
            a.until_closed(DEADLINE_S + MARGIN_S), b.until_closed(DEADLINE_S + MARGIN_S),
            c.until_closed(DEADLINE_S + MARGIN_S), trickle(a, body[5:]),
        )
        assert time.monotonic() - started < DEADLINE_S + MARGIN_S
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers[:3])
    # A body sent at once is not held up.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        response = await http.post("/api/v1/auth/refresh", content=body,
                                   headers={"content-type": "application/json"})
        assert response.status_code == 401


async def test_an_address_holds_few_unfinished_heads(server: ServerThread) -> None:
    port = server.settings.port
    async with (
        raw(port) as a, raw(port) as b, raw(port) as c, raw(port) as extra,
        raw(port, "127.0.0.2") as other,
    ):
        for conn in (a, b, c):
            await conn.send(b"GET /healthz HTTP/1.1\r\n")
        # The address's fourth is refused at once; another address is not affected.
        assert (await extra.until_closed(MARGIN_S)).startswith(b"HTTP/1.1 503 ")
        await other.send(HEAD + b"Connection: close\r\n\r\n")
        assert (await other.until_closed(MARGIN_S)).startswith(b"HTTP/1.1 200 ")
        # The three were held, and cut at the deadline.
        for conn in (a, b, c):
            assert (await conn.until_closed(DEADLINE_S + MARGIN_S)).startswith(b"HTTP/1.1 408 ")
    # Their places are free again.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        assert (await http.get("/healthz")).status_code == 200


async def test_a_trusted_proxy_is_capped_only_in_all(server: ServerThread) -> None:
    port = server.settings.port
    async with (
        raw(port) as a, raw(port) as b, raw(port, PROXY) as p1, raw(port, PROXY) as p2,
        raw(port, PROXY) as p3, raw(port, PROXY) as p4, raw(port, PROXY) as p5,
        raw(port, PROXY) as p6, raw(port, PROXY) as p7, raw(port, "127.0.0.2") as other,
    ):
        held = (a, b, p1, p2, p3, p4, p5, p6)
        for conn in held:
            await conn.send(b"GET /healthz HTTP/1.1\r\n")
        # The proxy holds six, past the per-address cap of three; with the other two, that is
        # the process's eight: one more is refused, from the proxy or from anyone.
        assert (await p7.until_closed(MARGIN_S)).startswith(b"HTTP/1.1 503 ")
        assert (await other.until_closed(MARGIN_S)).startswith(b"HTTP/1.1 503 ")
        for conn in held:
            assert (await conn.until_closed(DEADLINE_S + MARGIN_S)).startswith(b"HTTP/1.1 408 ")


def test_the_count_per_address_and_in_all() -> None:
    settings = HttpSettings(max_unfinished_heads_per_address=2, max_unfinished_heads=6)
    heads = UnfinishedHeads(settings, "10.0.0.0/8,::1")
    assert heads.begin("192.0.2.1", admit=True) and heads.begin("192.0.2.1", admit=True)
    assert not heads.begin("192.0.2.1", admit=True)
    # A keep-alive connection's next head is counted without asking.
    assert heads.begin("192.0.2.1", admit=False)
    # An IPv6 client counts by its /64.
    assert heads.begin("2001:db8::1", admit=True) and heads.begin("2001:db8::2", admit=True)
    assert not heads.begin("2001:db8::3", admit=True)
    # A trusted proxy (here as IPv4 in IPv6, as a dual-stack socket reports it) only in all.
    assert heads.begin("::ffff:10.1.2.3", admit=True)
    assert not heads.begin("10.0.0.1", admit=True)  # six in all
    for host in ("192.0.2.1", "192.0.2.1", "::ffff:10.1.2.3"):
        heads.end(host)
    assert heads.count == 3
    assert heads.begin("192.0.2.1", admit=True) and heads.begin("10.0.0.1", admit=True)
    assert heads.begin(None, admit=True)  # no peer address (a Unix socket): only in all
    assert not heads.begin(None, admit=True)
    everyone = UnfinishedHeads(settings, "*")
    assert all(everyone.begin("192.0.2.1", admit=True) for _ in range(6))
