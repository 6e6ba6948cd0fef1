"""A worker killed mid-scan: RabbitMQ redelivers the task to a new worker, and the client still
sees every event exactly once (the pipeline is idempotent by request id)."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Stack, WorkerProcess
from tests.support.client import CoachClient

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("stack", ["distributed"], indirect=True)
async def test_redelivered_scan_emits_nothing_twice(
    stack: Stack, client: CoachClient, worker: WorkerProcess
) -> None:
    rid = await client.scan(b"SLOW")
    await client.recv_until(lambda e: e["type"] == "coaching.delta" and e["index"] == 4)
    await asyncio.to_thread(worker.kill)  # SIGKILL: no chance to ack or clean up
    await asyncio.to_thread(worker.start)
    events = await client.recv_until(
        lambda e: e["type"] == "scan.done" and e["request_id"] == rid, timeout=90
    )
    assert events[-1]["status"] == "completed"
    mine = [e for e in client.events if e.get("request_id") == rid]
    kinds = [e["type"] for e in mine]
    assert kinds.count("scan.classified") == 1
    assert kinds.count("coaching.done") == 1
    assert kinds.count("bins.suggested") == 1
    assert [e["index"] for e in mine if e["type"] == "coaching.delta"] == list(range(20))
    # The restarted worker serves new scans.
    assert (await client.run_scan())[-1]["status"] == "completed"
