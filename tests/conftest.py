"""Shared fixtures: real PostgreSQL, Redis, RabbitMQ and an S3 API on loopback.

The test command (scripts/test.sh) starts PostgreSQL, Redis and RabbitMQ when they are not
running. Each test run gets its own PostgreSQL database and Celery queue, so runs never see
each other's rows or messages. S3 cannot be reached here: moto's server mode serves the real S3
REST API on loopback, and boto3 talks to it over HTTP exactly as it would to AWS.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr

from protocol.messages import MAX_FRAME_BYTES
from server.app import create_app
from server.auth.config import AccountsSettings
from server.cli import GracefulServer, server_config
from server.db import Database
from server.migrate import upgrade
from server.settings import (
    AuthSettings,
    Mode,
    S3Settings,
    SessionSettings,
    Settings,
)
from tests.support.pg import scratch_database

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("WASTECOACH_TEST_REDIS", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("WASTECOACH_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
TEST_STAGES = "tests.support.stages:build"
RUN_ID = uuid.uuid4().hex[:8]
#: Every test client comes from 127.0.0.1, and in distributed mode the per-address guest budget
#: lives in the shared Redis for a day: tests that are not about that limit lift it.
UNLIMITED_GUESTS = {"guests_per_minute": 10**9, "guests_per_day": 10**9}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def session_settings(**overrides: float | int) -> SessionSettings:
    values: dict[str, float | int] = {"auth_timeout_s": 3.0, "idle_timeout_s": 30.0}
    values.update(overrides)
    return SessionSettings(**values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database with all migrations applied, dropped at the end of the run."""
    with scratch_database("wc_test") as url:
        upgrade(url)
        yield url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A :class:`Database` on the module's ``db_url`` fixture, disposed afterwards."""
    database = Database(db_url)
    yield database
    await database.dispose()


# --------------------------------------------------------------------------- S3 (moto server)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    yield f"http://127.0.0.1:{port}"
    server.stop()


# --------------------------------------------------------------------------- live servers


@dataclass
class Stack:
    """A running server (and, distributed, a Celery worker) to test against over HTTP/WS."""

    mode: str
    base_url: str
    settings: Settings
    app: object

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/api/v1/coach/ws"


class ServerThread:
    def __init__(self, settings: Settings, *, as_served: bool = False) -> None:
        """``as_served``: uvicorn configured exactly as ``wastecoach serve`` does it
        (``server_config``), which listens where ``settings`` says."""
        self.settings = settings
        self.app = create_app(settings)
        if as_served:
            config = server_config(settings, self.app)
        else:
            config = uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=settings.port,
                log_level="warning",
                ws_max_size=MAX_FRAME_BYTES,
                ws_per_message_deflate=False,
                lifespan="on",
            )
        self.server = GracefulServer(config, self.app)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def distributed_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        WASTECOACH_MODE="distributed",
        WASTECOACH_DATABASE_URL=settings.sqlalchemy_url,
        WASTECOACH_REDIS_URL=settings.redis_url,
        WASTECOACH_BROKER_URL=settings.broker_url,
        WASTECOACH_CELERY_QUEUE=settings.celery_queue,
        WASTECOACH_CELERY_QUEUE_TYPE=settings.celery_queue_type.value,
        WASTECOACH_AUTH__JWT_SECRET="test-secret-" + RUN_ID,
        WASTECOACH_S3__ENDPOINT_URL=settings.s3.endpoint_url or "",
        WASTECOACH_S3__BUCKET=settings.s3.bucket,
        WASTECOACH_DATA_DIR=str(settings.data_dir),
        # A port of its own: another run's worker on this machine may hold the default one.
        WASTECOACH_METRICS_PORT=str(settings.metrics_port),
    )
    if settings.stages_factory:
        env["WASTECOACH_STAGES_FACTORY"] = settings.stages_factory
    env["PYTHONPATH"] = str(ROOT)
    return env


class WorkerProcess:
    """``wastecoach worker`` as a subprocess: a real Celery worker on RabbitMQ."""

    def __init__(self, settings: Settings, log_path: Path, *, named: bool = True) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        # named=False starts it as an operator would, without --hostname.
        self.named = named

    def start(self) -> None:
        self._log = log = self.log_path.open("wb")
        argv = [
            sys.executable,
            "-m",
            "server.cli",
            "worker",
            "--concurrency",
            "16",
            "--loglevel",
            "info",
        ]
        if self.named:
            argv += ["--hostname", f"test-{uuid.uuid4().hex[:6]}@%h"]
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=distributed_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while b" ready." not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + self.log_path.read_text())
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        self.kill()


def make_settings(
    mode: str,
    tmp: Path,
    *,
    pg_url: str | None = None,
    s3_endpoint: str | None = None,
    session: SessionSettings | None = None,
) -> Settings:
    port = free_port()
    common = dict(
        data_dir=tmp,
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        stages_factory=TEST_STAGES,
        session=session or session_settings(),
        accounts=AccountsSettings(**UNLIMITED_GUESTS),
    )
    if mode == "embedded":
        return Settings(mode=Mode.EMBEDDED, **common)  # type: ignore[arg-type]
    return Settings(
        mode=Mode.DISTRIBUTED,
        database_url=pg_url,
        redis_url=REDIS_URL,
        broker_url=AMQP_URL,
        celery_queue=f"wastecoach.test.{RUN_ID}",
        auth=AuthSettings(jwt_secret=SecretStr("test-secret-" + RUN_ID), guest_enabled=True),
        s3=S3Settings(endpoint_url=s3_endpoint, bucket=f"wc-test-{RUN_ID}"),
        metrics_port=free_port(),
        **common,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def worker_settings(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, s3_endpoint: str
) -> Settings:
    return make_settings(
        "distributed", tmp_path_factory.mktemp("dist"), pg_url=pg_url, s3_endpoint=s3_endpoint
    )


@pytest.fixture(scope="session")
def worker(
    worker_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(worker_settings, tmp_path_factory.mktemp("logs") / "worker.log")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session", params=["embedded", "distributed"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The same contract tests run against both modes."""
    if request.param == "embedded":
        settings = make_settings("embedded", tmp_path_factory.mktemp("emb"))
    else:
        settings = request.getfixturevalue("worker_settings")
        request.getfixturevalue("worker")
    server = ServerThread(settings)
    server.start()
    yield Stack(request.param, f"http://127.0.0.1:{settings.port}", settings, server.app)
    server.stop()


async def new_guest(stack: Stack) -> dict[str, Any]:
    """A new guest account on ``stack``: the body of ``POST /api/v1/auth/guest``."""
    import httpx

    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.post("/api/v1/auth/guest")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def guest_token(stack: Stack) -> str:
    token: str = (await new_guest(stack))["access_token"]
    return token


@pytest.fixture
async def client(stack: Stack, guest_token: str) -> AsyncIterator[object]:
    from tests.support.client import CoachClient

    c = CoachClient(stack.ws_url, guest_token)
    ready = await c.connect()
    assert ready["type"] == "session.ready", ready
    yield c
    await c.close()
