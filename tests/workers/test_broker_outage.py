"""A RabbitMQ outage does not end a worker: it reconnects and serves scans again.

Stops the shared RabbitMQ node's application for a few seconds (``rabbitmqctl stop_app``),
always starting it again, and checks that the worker process lived through it, that a scan
running at the time still finished, and that a scan sent afterwards completes.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import pytest

from tests.conftest import Stack, WorkerProcess
from tests.support.client import CoachClient

pytestmark = [
    pytest.mark.fault,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl"),
]

OUTAGE_S = 8


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


def _outage() -> None:
    _rabbitmqctl("stop_app")
    try:
        time.sleep(OUTAGE_S)
    finally:
        _rabbitmqctl("start_app")
        _rabbitmqctl("await_startup")


def _connections(worker: WorkerProcess) -> int:
    return worker.log_path.read_bytes().count(b"Connected to amqp://")


async def _scan_when_the_server_publishes_again(client: CoachClient) -> str:
    """The server's own publisher reconnects on its own schedule (not this test's subject):
    a scan it could not enqueue yet is refused with an error and sent again."""
    deadline = time.monotonic() + 60
    while True:
        last = (await client.run_scan())[-1]
        unsent = (last.get("error") or {}).get("message") == "could not start the scan"
        if last["type"] == "scan.done" and not unsent:
            return str(last["status"])
        assert time.monotonic() < deadline, last
        await asyncio.sleep(1)


@pytest.mark.parametrize("stack", ["distributed"], indirect=True)
async def test_worker_survives_a_rabbitmq_outage_and_serves_scans_after_it(
    stack: Stack, client: CoachClient, worker: WorkerProcess
) -> None:
    assert (await client.run_scan())[-1]["status"] == "completed"
    before = _connections(worker)
    rid = await client.scan(b"SLOW")  # running while the broker goes away
    await client.recv_until(lambda e: e["type"] == "coaching.delta" and e["request_id"] == rid)
    await asyncio.to_thread(_outage)
    events = await client.recv_until(
        lambda e: e["type"] == "scan.done" and e["request_id"] == rid, timeout=60
    )
    assert events[-1]["status"] == "completed"

    deadline = time.monotonic() + 60
    while _connections(worker) <= before:
        assert worker.proc is not None and worker.proc.poll() is None, (
            "the worker exited:\n" + worker.log_path.read_text()[-3000:]
        )
        assert time.monotonic() < deadline, "the worker did not reconnect"
        await asyncio.sleep(0.5)
    assert await _scan_when_the_server_publishes_again(client) == "completed"
    assert worker.proc is not None and worker.proc.poll() is None
    log = worker.log_path.read_text()
    assert "Unrecoverable error" not in log
