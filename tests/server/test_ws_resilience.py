"""What a connection does when the session's state fails under it (both modes where they
apply; the Redis-only cases against the machine's Redis)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from websockets.exceptions import ConnectionClosed

from tests.conftest import REDIS_URL, Stack
from tests.support.client import CoachClient

pytestmark = pytest.mark.timeout(120)


async def _closed_with(client: CoachClient, timeout: float) -> tuple[int | None, str]:
    assert client.ws is not None
    try:
        while True:
            await client.recv(timeout)
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code, exc.rcvd.reason


@pytest.mark.parametrize("stack", ["distributed"], indirect=True)
async def test_history_deleted_under_a_running_scan_closes_1011(client: CoachClient) -> None:
    """Before, the scan's events went nowhere and the client waited in silence."""
    rid = await client.scan(b"SLOW")
    await client.recv_until(lambda e: e["type"] == "coaching.delta")
    admin = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = await admin.keys("wc:{" + str(client.session_id) + "}:*")
        assert keys
        await admin.delete(*keys)
    finally:
        await admin.aclose()
    # The running scan's next append finds the log gone and tells the connection at once.
    code, reason = await _closed_with(client, timeout=5)
    assert code == 1011 and "history lost" in reason
    ready = await client.connect(resume=True)
    assert ready["type"] == "session.ready" and ready["resumed"] is False
    done = await client.run_scan()
    assert done[-1]["type"] == "scan.done" and done[-1]["status"] == "completed"
    assert rid not in {e.get("request_id") for e in done}


@pytest.mark.parametrize("stack", ["embedded", "distributed"], indirect=True)
async def test_cancel_finds_a_scan_started_on_an_earlier_connection(
    stack: Stack, client: CoachClient
) -> None:
    """Open scans are kept beside the log (not found by rereading it): a resumed connection
    cancels a scan it did not start, however long the session has been."""
    rid = await client.scan(b"SLOW")
    await client.recv_until(lambda e: e["type"] == "coaching.delta")
    await client.close()
    ready = await client.connect(resume=True)
    assert ready["resumed"] is True
    if stack.mode == "distributed":
        # As if the session had run long enough for the log to drop its scan.accepted.
        admin = aioredis.Redis.from_url(REDIS_URL)
        try:
            stream = "wc:{" + str(client.session_id) + "}:log"
            await admin.xtrim(stream, maxlen=1, approximate=False)
        finally:
            await admin.aclose()
    await client.send({"type": "scan.cancel", "request_id": rid})
    events = await client.recv_until(
        lambda e: e["type"] in ("scan.done", "error") and e.get("request_id") == rid
    )
    assert events[-1]["type"] == "scan.done" and events[-1]["status"] == "cancelled"
    # Cancelling it again says it is no longer running.
    await client.send({"type": "scan.cancel", "request_id": rid})
    again = await client.recv_until(lambda e: e["type"] == "error")
    assert again[-1]["code"] == "unknown_request"
