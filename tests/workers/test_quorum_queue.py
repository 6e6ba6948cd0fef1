"""The scan queue as a RabbitMQ quorum queue (WASTECOACH_CELERY_QUEUE_TYPE=quorum, production's
setting in deploy/k8s): the server and a real worker declare it so, and scans run through it.

Celery recognises a quorum queue only by the declaration's ``x-queue-type`` (it would otherwise
set a channel-wide prefetch, which quorum queues refuse, and the worker would fail to consume),
so this runs the real worker process on a fresh quorum queue of the machine's RabbitMQ.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest
from aiormq.exceptions import ChannelPreconditionFailed

from server.settings import QueueType, Settings
from tests.conftest import (
    AMQP_URL,
    RUN_ID,
    ServerThread,
    Stack,
    WorkerProcess,
    make_settings,
    new_guest,
)
from tests.support.client import CoachClient

pytestmark = [pytest.mark.distributed, pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def quorum_settings(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, s3_endpoint: str
) -> Settings:
    settings = make_settings(
        "distributed", tmp_path_factory.mktemp("quorum"), pg_url=pg_url, s3_endpoint=s3_endpoint
    )
    return settings.model_copy(
        update={
            "celery_queue": f"wastecoach.test.quorum.{RUN_ID}",
            "celery_queue_type": QueueType.QUORUM,
        }
    )


@pytest.fixture(scope="module")
def quorum_stack(quorum_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[ServerThread, WorkerProcess]
]:
    log: Path = tmp_path_factory.mktemp("quorum-logs") / "worker.log"
    worker = WorkerProcess(quorum_settings, log)
    worker.start()
    server = ServerThread(quorum_settings)
    try:
        server.start()
        yield server, worker
    finally:
        server.stop()
        worker.stop()


async def test_scans_run_through_a_quorum_queue(
    quorum_settings: Settings, quorum_stack: tuple[ServerThread, WorkerProcess]
) -> None:
    _, worker = quorum_stack
    base = f"http://127.0.0.1:{quorum_settings.port}"
    stack = Stack("distributed", base, quorum_settings, None)
    token = (await new_guest(stack))["access_token"]
    client = CoachClient(stack.ws_url, token)
    assert (await client.connect())["type"] == "session.ready"
    try:
        for _ in range(3):
            assert (await client.run_scan())[-1]["status"] == "completed"
    finally:
        await client.close()
    assert worker.proc is not None and worker.proc.poll() is None, worker.log_path.read_text()

    # The broker holds it as a quorum queue: declaring it as classic is refused.
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        with pytest.raises(ChannelPreconditionFailed):
            await channel.declare_queue(
                quorum_settings.celery_queue, durable=True, arguments={"x-queue-type": "classic"}
            )
        channel = await connection.channel()
        await channel.queue_delete(quorum_settings.celery_queue)
    finally:
        await connection.close()
