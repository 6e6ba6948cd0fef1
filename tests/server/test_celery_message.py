"""What a scan job looks like on RabbitMQ (a real broker; the message is read back raw)."""

from __future__ import annotations

import base64
import json
import time
import uuid

import aio_pika
import pytest
from kombu import Connection
from yarl import URL

from protocol.messages import InlineImage, Locale
from server.pipeline.jobs import ScanJob
from tests.conftest import AMQP_URL, free_port
from workers.app import SCAN_TASK
from workers.publisher import CeleryRunner, _BrokerConnection

PHOTO = InlineImage(content_type="image/jpeg", data=base64.b64encode(b"SECRETPHOTO" * 8).decode())


def a_job(request_id: str) -> ScanJob:
    return ScanJob(scan_id="s" * 32, request_id=request_id, session_id="sess", user_id="u" * 32,
                   locale=Locale.EN, image=PHOTO, enqueued_at=time.time())


def fresh_queue() -> str:
    return f"wastecoach.test.{uuid.uuid4().hex[:8]}"


async def test_scan_job_travels_whole_but_headers_name_it_only() -> None:
    queue = fresh_queue()
    runner = CeleryRunner(AMQP_URL, queue)
    job = a_job("r1")
    try:
        await runner.submit(job)
        with Connection(AMQP_URL) as conn:
            channel = conn.default_channel
            message = None
            deadline = time.monotonic() + 5
            while message is None and time.monotonic() < deadline:
                message = channel.basic_get(queue, no_ack=True)
            assert message is not None, "the job never reached the queue"
            channel.queue_delete(queue)
    finally:
        await runner.close()
    headers = message.headers
    assert headers["task"] == SCAN_TASK
    assert headers["id"] == "sess:r1"
    # Monitoring tools show argsrepr; it names the scan and carries none of the photo.
    assert headers["argsrepr"] == f"scan {job.scan_id}"
    assert PHOTO.data[:16] not in json.dumps(headers)
    args, _kwargs, _ = json.loads(message.body)
    assert ScanJob.model_validate(args[0]) == job


async def test_a_job_rabbitmq_cannot_queue_is_an_error_not_a_silent_loss() -> None:
    queue = fresh_queue()
    runner = CeleryRunner(AMQP_URL, queue)
    job = a_job("r2")
    try:
        await runner.submit(job)  # declares the queue and its binding
        with Connection(AMQP_URL) as conn:
            conn.default_channel.queue_delete(queue)  # an operator deleted it meanwhile
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await runner.submit(job)
    finally:
        await runner.close()


async def test_a_broker_that_cannot_be_reached_is_an_error() -> None:
    runner = CeleryRunner(f"amqp://guest:guest@127.0.0.1:{free_port()}//", "wastecoach.none")
    try:
        with pytest.raises(OSError):
            await runner.submit(a_job("r3"))
    finally:
        await runner.close()


async def test_a_connection_that_failed_to_open_is_closed() -> None:
    # Otherwise aio-pika schedules a close when the object is collected, which fails (and
    # warns) when that happens outside a running loop.
    connection = _BrokerConnection(URL(f"amqp://guest:guest@127.0.0.1:{free_port()}/"))
    with pytest.raises(OSError):
        await connection.connect(timeout=5)
    assert connection.is_closed
