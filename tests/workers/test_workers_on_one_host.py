"""Two workers started on one host, as an operator starts them (no ``--hostname``), both take
scans from the queue.

Celery names a worker celery@<host> unless told otherwise, and its remote-control queue is
exclusive to that name: the second worker was refused it, restarted its consumer in a loop and
never consumed, so every scan ran on the first (found by bench/capacity.py, where the second of
two workers stayed idle). This runs both real worker processes on a fresh queue of the machine's
RabbitMQ and asks the broker how many consumers the queue has.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aio_pika
import pytest

from server.settings import Settings
from tests.conftest import AMQP_URL, RUN_ID, WorkerProcess, free_port, make_settings

pytestmark = [pytest.mark.distributed, pytest.mark.slow, pytest.mark.timeout(180)]


async def consumers(queue: str) -> int:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.consumer_count
        assert count is not None
        return count
    finally:
        await connection.close()


async def test_two_unnamed_workers_on_one_host_both_consume(
    tmp_path: Path, pg_url: str, s3_endpoint: str
) -> None:
    settings: Settings = make_settings(
        "distributed", tmp_path, pg_url=pg_url, s3_endpoint=s3_endpoint
    )
    settings = settings.model_copy(update={"celery_queue": f"wastecoach.test.pair.{RUN_ID}"})
    workers = [
        WorkerProcess(
            settings.model_copy(update={"metrics_port": free_port()}),
            tmp_path / f"worker{n}.log",
            named=False,
        )
        for n in (1, 2)
    ]
    try:
        for worker in workers:
            worker.start()
        # "ready." is logged before a refused consumer gives up; give a loop time to show.
        deadline = time.monotonic() + 20
        count = 0
        while time.monotonic() < deadline:
            count = await consumers(settings.celery_queue)
            if count == 2:
                await asyncio.sleep(3)
                count = await consumers(settings.celery_queue)
                break
            await asyncio.sleep(0.5)
        logs = "\n".join(w.log_path.read_text()[-2000:] for w in workers)
        assert count == 2, logs
        assert "RESOURCE_LOCKED" not in logs, logs
        assert all(w.proc is not None and w.proc.poll() is None for w in workers), logs
    finally:
        for worker in workers:
            worker.stop()
