"""The harness against the distributed server: PostgreSQL, Redis, a real Celery worker on
RabbitMQ, uploads to S3 (moto's server on loopback), the same protocol on the wire."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.auth.config import AccountsSettings
from server.settings import Settings
from tests.conftest import UNLIMITED_GUESTS, ServerThread, WorkerProcess, free_port
from tests.loadtest.conftest import run_harness

pytestmark = [pytest.mark.distributed, pytest.mark.slow, pytest.mark.timeout(600)]

#: Every simulated user scans far more than a person does.
UNLIMITED = AccountsSettings(**UNLIMITED_GUESTS, scans_per_minute=10**6, scans_per_day=10**6,
                             chats_per_minute=10**6, chats_per_day=10**6)


@pytest.fixture(scope="module")
def distributed_url(worker_settings: Settings, worker: WorkerProcess) -> Iterator[str]:
    """An API server of its own (the suite's Celery worker runs its scans), with the per-user
    budgets lifted."""
    port = free_port()
    settings = worker_settings.model_copy(
        update={"port": port, "public_url": f"http://127.0.0.1:{port}", "accounts": UNLIMITED}
    )
    server = ServerThread(settings)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_scan_and_chat_through_s3_uploads_on_the_distributed_server(
    distributed_url: str, photos: Path, tmp_path: Path
) -> None:
    run = run_harness(["--users", "2", "--spawn-rate", "2", "--think", "0.05", "0.2",
                       "--host", distributed_url, "--photos", str(photos), "--duration", "5",
                       "--scenario", "scan+chat", "--upload", "--chat-questions", "1"],
                      tmp_path / "out")
    assert run.code == 0, run.output[-4000:]
    report = run.report
    completed = report["scans"]["completed"]
    assert completed >= 1 and report["errors"] == {}
    assert report["latency_ms"]["upload"]["count"] >= completed
    assert report["latency_ms"]["end_to_end"]["count"] == completed
    assert sum(report["chats"].values()) >= 1


def test_live_camera_frames_on_the_distributed_server(
    distributed_url: str, real_photos: Path, tmp_path: Path
) -> None:
    """Live mode's frames are analysed in the API process; the steady item's scan goes through
    the queue to the worker like any other."""
    run = run_harness(["--users", "1", "--think", "0.1", "0.2", "--host", distributed_url,
                       "--photos", str(real_photos), "--duration", "6", "--scenario", "live",
                       "--live-seconds", "4"], tmp_path / "out")
    assert run.code == 0, run.output[-4000:]
    report = run.report
    assert report["errors"] == {} and report["closes"] == {}
    assert report["counts"]["live_frames_sent"][""] >= 4
    assert report["latency_ms"]["live_hint"]["count"] >= 1
    assert report["scans"].get("completed", 0) >= 1
    assert report["latency_ms"]["classified"]["count"] == report["scans"]["completed"]


def test_idle_sessions_on_the_distributed_server(distributed_url: str, tmp_path: Path) -> None:
    run = run_harness(["--users", "3", "--spawn-rate", "3", "--host", distributed_url,
                       "--scenario", "idle", "--duration", "4"], tmp_path / "out")
    assert run.code == 0, run.output[-4000:]
    report = run.report
    assert report["counts"]["sessions_opened"][""] == 3
    assert report["scans"] == {} and report["closes"] == {} and report["errors"] == {}
