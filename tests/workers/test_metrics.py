"""The queue's metrics: a worker serves its own on ``WASTECOACH_METRICS_PORT`` (a real
``wastecoach worker``; the scans it counts are checked in tests/server/test_metrics.py), and
the publisher counts the jobs RabbitMQ did not take."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from prometheus_client import REGISTRY

from protocol.messages import InlineImage, Locale
from server.metrics import serve
from server.pipeline.jobs import ScanJob
from server.settings import Settings
from tests.conftest import WorkerProcess, free_port
from tests.support.metrics import scrape, value
from workers.publisher import CeleryRunner

pytestmark = pytest.mark.timeout(120)


def a_job() -> ScanJob:
    photo = InlineImage(content_type="image/jpeg", data="SlBFR0RBVEE=")
    return ScanJob(scan_id="s" * 32, request_id="r1", session_id="sess", user_id="u" * 32,
                   locale=Locale.EN, image=photo, enqueued_at=time.time())


def failures() -> float:
    return REGISTRY.get_sample_value("wastecoach_queue_publish_failures_total") or 0.0


async def test_a_publish_that_fails_is_counted() -> None:
    """Nothing listens on the broker's port: the submit raises, and the failure is counted."""
    runner = CeleryRunner(f"amqp://guest:guest@127.0.0.1:{free_port()}//", "wastecoach.nowhere")
    before = failures()
    try:
        with pytest.raises(Exception):  # noqa: B017 - aio-pika's own connection error
            await runner.submit(a_job())
    finally:
        await runner.close()
    assert failures() == before + 1


@pytest.mark.distributed
async def test_a_worker_serves_its_metrics_on_its_port(
    worker_settings: Settings, worker: WorkerProcess
) -> None:
    samples = await scrape(f"http://127.0.0.1:{worker_settings.metrics_port}/metrics")
    # Its own figures, at zero until it runs a scan, and the process collectors.
    assert ("wastecoach_scans_total", frozenset({("status", "completed")})) in samples
    assert value(samples, "process_resident_memory_bytes") > 0


def test_port_zero_serves_nothing() -> None:
    assert serve(0) is False


def test_a_taken_port_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="server.metrics"):
            assert serve(port, host="127.0.0.1") is False
    assert f"port {port}" in caplog.text
