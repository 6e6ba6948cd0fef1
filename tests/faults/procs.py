"""The processes under test: ``wastecoach serve`` and ``wastecoach worker`` as subprocesses,
configured for distributed mode on the private services, their output in log files."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from websockets.sync.client import ClientConnection

from tests.faults.services import PrivateServices, free_port

ROOT = Path(__file__).resolve().parents[2]
#: No log of a process under test may grow past this (a fault once produced a 2.1 GB log of
#: one traceback repeated).
MAX_LOG_BYTES = 5 * 1024 * 1024


def stack_env(
    services: PrivateServices,
    data_dir: Path,
    s3_endpoint: str,
    *,
    queue: str,
    stages: str = "tests.support.stages:build",
    **extra: str,
) -> dict[str, str]:
    """Environment of a distributed server or worker on the private services."""
    env = dict(os.environ)
    # Nothing of the caller's own Waste Coach configuration may leak in.
    for key in list(env):
        if key.startswith("WASTECOACH_"):
            del env[key]
    env.update(
        WASTECOACH_MODE="distributed",
        WASTECOACH_DATABASE_URL=services.pg.url,
        WASTECOACH_REDIS_URL=services.redis.url,
        WASTECOACH_BROKER_URL=services.rabbit.url,
        WASTECOACH_CELERY_QUEUE=queue,
        WASTECOACH_AUTH__JWT_SECRET="fault-secret-" + queue,
        WASTECOACH_AUTH__GUEST_ENABLED="true",
        WASTECOACH_S3__ENDPOINT_URL=s3_endpoint,
        WASTECOACH_S3__BUCKET="wc-fault",
        WASTECOACH_DATA_DIR=str(data_dir),
        WASTECOACH_STAGES_FACTORY=stages,
        # Several workers run at once here: none serves metrics (tests/server/test_metrics.py
        # and tests/workers/test_metrics.py do).
        WASTECOACH_METRICS_PORT="0",
        WASTECOACH_ACCOUNTS__SCANS_PER_MINUTE="100000",
        WASTECOACH_ACCOUNTS__SCANS_PER_DAY="1000000",
        WASTECOACH_ACCOUNTS__CHATS_PER_MINUTE="100000",
        WASTECOACH_ACCOUNTS__CHATS_PER_DAY="1000000",
        # Every load client comes from 127.0.0.1; the per-address guest budget is not tested here.
        WASTECOACH_ACCOUNTS__GUESTS_PER_MINUTE="1000000",
        WASTECOACH_ACCOUNTS__GUESTS_PER_DAY="1000000",
        # Every client comes from 127.0.0.1: the per-address connection caps are not
        # measured here either.
        WASTECOACH_SESSION__MAX_CONNECTIONS_PER_ADDRESS="100000",
        WASTECOACH_SESSION__MAX_UNAUTHENTICATED_PER_ADDRESS="100000",
        WASTECOACH_LOG_LEVEL="INFO",
        AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class _Proc:
    name = "process"

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = log_dir / f"{self.name}.log"

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _spawn(self) -> None:
        self.starts += 1
        self.log_path = self.log_dir / f"{self.name}-{self.starts}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self._argv(), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 25) -> None:
        if self.alive:
            self.signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.kill()

    def logs(self) -> list[Path]:
        return sorted(self.log_dir.glob(f"{self.name}-*.log"))

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs())


class ServerProc(_Proc):
    name = "server"

    def __init__(self, env: dict[str, str], log_dir: Path, port: int | None = None) -> None:
        super().__init__(env, log_dir)
        self.port = port or free_port()
        self._warm: ClientConnection | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/coach/ws"

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1",
                "--port", str(self.port)]

    def start(self, timeout: float = 90, *, wait_ready: bool = True) -> None:
        self._spawn()
        if wait_ready:
            self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise RuntimeError("server exited during start:\n" + self.log_text()[-4000:])
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("server did not answer /healthz:\n" + self.log_text()[-4000:])
            time.sleep(0.2)

    def warm_up(self, timeout: float = 15, *, keep: bool = True) -> None:
        """Open one session before the test's load and keep it open (pinging) until the server
        stops: the server's pub/sub hub then subscribes alone, and never drops back to no
        subscription at all. (The race on a first subscription is the handshake-burst test's
        subject; other tests should not trip over it.)"""
        import json
        import threading

        from websockets.sync.client import connect

        token = httpx.post(self.base_url + "/api/v1/auth/guest", timeout=timeout).json()[
            "access_token"]
        opened = threading.Event()
        outcome: list[object] = []

        def hold() -> None:
            try:
                with connect(self.ws_url, open_timeout=timeout) as ws:
                    ws.send(json.dumps({"type": "session.start", "token": token}))
                    outcome.append(json.loads(ws.recv(timeout=timeout)))
                    self._warm = ws
                    opened.set()
                    while keep and self._warm is ws:
                        with contextlib.suppress(TimeoutError):
                            ws.recv(timeout=5)
                            continue
                        ws.send(json.dumps({"type": "ping"}))
            except Exception as exc:
                outcome.append(exc)
            finally:
                opened.set()

        threading.Thread(target=hold, daemon=True, name="warm-session").start()
        opened.wait(timeout + 5)
        ready = outcome[0] if outcome else None
        if not keep or not isinstance(ready, dict) or ready.get("type") != "session.ready":
            self._close_warm()
        if not isinstance(ready, dict) or ready.get("type") != "session.ready":
            raise RuntimeError(f"warm-up session.start failed: {ready!r}")

    def _close_warm(self) -> None:
        ws = self._warm
        if ws is not None:
            self._warm = None
            with contextlib.suppress(Exception):
                ws.close()

    def kill(self) -> None:
        self._close_warm()
        super().kill()

    def stop(self, timeout: float = 25) -> None:
        self._close_warm()
        super().stop(timeout)

    def signal(self, sig: int) -> None:
        if sig == signal.SIGTERM:
            self._close_warm()
        super().signal(sig)


class WorkerProc(_Proc):
    name = "worker"

    def __init__(self, env: dict[str, str], log_dir: Path, index: int = 1) -> None:
        self.name = f"worker{index}"
        super().__init__(env, log_dir)
        self.hostname = f"fault{index}-{secrets.token_hex(3)}@%h"

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", "server.cli", "worker", "--concurrency", "16",
                "--loglevel", "info", "--hostname", self.hostname]

    def start(self, timeout: float = 90) -> None:
        self._spawn()
        deadline = time.monotonic() + timeout
        while b" ready." not in self.log_path.read_bytes():
            if not self.alive or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + self.log_path.read_text()[-4000:])
            time.sleep(0.2)


def oversized_logs(directory: Path, limit: int = MAX_LOG_BYTES) -> list[str]:
    """Log files under ``directory`` bigger than ``limit`` bytes."""
    return [f"{p.name}: {p.stat().st_size} bytes" for p in sorted(directory.rglob("*.log"))
            if p.stat().st_size > limit]
