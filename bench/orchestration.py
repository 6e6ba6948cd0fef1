"""Orchestration overhead of a scan, with instant stages.

Starts the real server (and, distributed, a real Celery worker) as subprocesses with the
instant test stages (tests/support/stages.py), opens N concurrent WebSocket sessions and has
each run scans one after another with a random think time, as app users would. For every scan
it records the time from sending ``scan.start`` to the first event (``scan.accepted``) and to
``scan.done`` (end to end: accept, database row, queue, worker, all events, database update).

    python bench/orchestration.py --mode embedded --sessions 1 10 100
    python bench/orchestration.py --mode distributed --sessions 1 10 100

Distributed mode needs PostgreSQL, Redis and RabbitMQ on their default ports
(WASTECOACH_TEST_PG names the PostgreSQL admin URL).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.migrate import upgrade  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.support.pg import scratch_database  # noqa: E402

IMAGE = base64.b64encode(b"JPEG" * 64).decode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def one_session(url: str, token: str, scans: int, think_s: tuple[float, float],
                      first: list[float], total: list[float],
                      trace: list[str] | None = None) -> None:
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "session.start", "token": token}))
        json.loads(await ws.recv())
        for n in range(scans):
            await asyncio.sleep(random.uniform(*think_s))
            rid = f"b{n}"
            started = time.perf_counter()
            await ws.send(json.dumps({
                "type": "scan.start", "request_id": rid,
                "image": {"kind": "inline", "content_type": "image/jpeg", "data": IMAGE},
            }))
            got_first = False
            marks = []
            while True:
                # The load generator shares the cores with what it measures: it parses only
                # the events it needs (scan.done, or all of them when tracing).
                text = await ws.recv()
                at = (time.perf_counter() - started) * 1000
                if not got_first:
                    first.append(at)
                    got_first = True
                if trace is None and '"scan.done"' not in text:
                    continue
                event = json.loads(text)
                marks.append(f"{event['type']}@{at:.2f}")
                if event["type"] == "scan.done" and event["request_id"] == rid:
                    assert event["status"] == "completed", event
                    total.append((time.perf_counter() - started) * 1000)
                    if trace is not None:
                        stages = " ".join(f"{k}={v:.2f}" for k, v in event["timings_ms"].items())
                        trace.append(" ".join(marks) + f"  [server: {stages}]")
                    break


async def run_level(
    base: str, sessions: int, scans: int, think_s: tuple[float, float]
) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        tokens = [
            (await http.post("/api/v1/auth/guest")).json()["access_token"]
            for _ in range(sessions)
        ]
    url = base.replace("http://", "ws://") + "/api/v1/coach/ws"
    first: list[float] = []
    total: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(one_session(url, t, scans, think_s, first, total) for t in tokens))
    elapsed = time.perf_counter() - started
    return {
        "scans": len(total),
        "scans_per_s": len(total) / elapsed,
        **{f"first_p{q}": percentile(first, q) for q in (50, 95, 99)},
        **{f"e2e_p{q}": percentile(total, q) for q in (50, 95, 99)},
        "e2e_mean": statistics.fmean(total),
    }


async def trace_scans(base: str, scans: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        token = (await http.post("/api/v1/auth/guest")).json()["access_token"]
    url = base.replace("http://", "ws://") + "/api/v1/coach/ws"
    lines: list[str] = []
    await one_session(url, token, scans, (0.2, 0.3), [], [], lines)
    for line in lines[-min(3, len(lines)):]:
        print(line)
    # Median arrival of each event type (the first of its type in a scan), over all scans.
    arrivals: dict[str, list[float]] = {}
    for line in lines:
        seen: set[str] = set()
        for mark in line.split("  [")[0].split():
            kind, at = mark.split("@")
            if kind not in seen:
                seen.add(kind)
                arrivals.setdefault(kind, []).append(float(at))
    print("median over", len(lines), "scans:", "  ".join(
        f"{kind}@{statistics.median(ats):.2f}"
        for kind, ats in sorted(arrivals.items(), key=lambda item: statistics.median(item[1]))
    ))


def wait_http(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


@dataclass(frozen=True)
class Stack:
    """A started stack: where to reach it and what to watch."""

    base: str
    #: process name ("api", "worker1", ...) -> its /metrics URL
    metrics: dict[str, str]
    #: the Celery queue of this stack (distributed mode), else None
    queue: str | None
    broker_url: str | None
    #: the server's processes (API and workers)
    pids: tuple[int, ...] = ()


@contextlib.contextmanager
def serve_stack(
    mode: str, *, stages_factory: str | None = "tests.support.stages:build",
    extra_env: dict[str, str] | None = None,
) -> Iterator[str]:
    """The real server (and, distributed, a real Celery worker, PostgreSQL database, S3 on moto)
    as subprocesses, with the quotas and per-address caps lifted (every bench client is a new
    guest from 127.0.0.1); yields the base URL once it is ready. ``stages_factory`` None runs
    the real stages."""
    with start_stack(mode, stages_factory=stages_factory, extra_env=extra_env) as stack:
        yield stack.base


@contextlib.contextmanager
def start_stack(
    mode: str, *, stages_factory: str | None = "tests.support.stages:build",
    extra_env: dict[str, str] | None = None, workers: int = 1,
) -> Iterator[Stack]:
    """:func:`serve_stack` with ``workers`` Celery worker processes in distributed mode, each
    serving its /metrics on a port of its own; yields the :class:`Stack` once it is ready."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tmp = tempfile.mkdtemp(prefix="wc-bench-")
    env = dict(os.environ, PYTHONPATH=str(ROOT), WASTECOACH_PORT=str(port),
               WASTECOACH_DATA_DIR=tmp, WASTECOACH_PUBLIC_URL=base,
               WASTECOACH_LOG_LEVEL="warning",
               WASTECOACH_SESSION__MAX_CONCURRENT_SCANS="8",
               # The benchmarks measure orchestration, not the per-user quotas.
               WASTECOACH_ACCOUNTS__SCANS_PER_MINUTE="100000",
               WASTECOACH_ACCOUNTS__SCANS_PER_DAY="100000",
               # Every bench client is a new guest from 127.0.0.1.
               WASTECOACH_ACCOUNTS__GUESTS_PER_MINUTE="100000",
               WASTECOACH_ACCOUNTS__GUESTS_PER_DAY="100000",
               # Every client comes from 127.0.0.1: the per-address connection caps are not
               # measured here either.
               WASTECOACH_SESSION__MAX_CONNECTIONS_PER_ADDRESS="100000",
               WASTECOACH_SESSION__MAX_UNAUTHENTICATED_PER_ADDRESS="100000")
    if stages_factory is not None:
        env["WASTECOACH_STAGES_FACTORY"] = stages_factory
    env.update(extra_env or {})
    procs: list[subprocess.Popen[bytes]] = []
    metrics = {"api": f"{base}/metrics"}
    moto = None
    stack = contextlib.ExitStack()
    if mode == "distributed":
        from moto.server import ThreadedMotoServer

        s3_port = free_port()
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
        moto.start()
        env.setdefault("AWS_ACCESS_KEY_ID", "bench")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        db_url = stack.enter_context(scratch_database("wc_bench"))
        upgrade(db_url)
        env.update(WASTECOACH_MODE="distributed", WASTECOACH_DATABASE_URL=db_url,
                   WASTECOACH_AUTH__JWT_SECRET="bench", WASTECOACH_AUTH__GUEST_ENABLED="true",
                   WASTECOACH_CELERY_QUEUE=f"wastecoach.bench.{uuid.uuid4().hex[:8]}",
                   WASTECOACH_S3__ENDPOINT_URL=f"http://127.0.0.1:{s3_port}")
        for n in range(1, workers + 1):
            metrics_port = free_port()
            metrics[f"worker{n}"] = f"http://127.0.0.1:{metrics_port}/metrics"
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "server.cli", "worker", "--concurrency", "32",
                 "--loglevel", "warning"], cwd=ROOT,
                env={**env, "WASTECOACH_METRICS_PORT": str(metrics_port)}))
    procs.append(subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], cwd=ROOT,
                                  env=env))
    try:
        wait_http(base, procs[-1])
        distributed = mode == "distributed"
        yield Stack(base=base, metrics=metrics,
                    queue=env["WASTECOACH_CELERY_QUEUE"] if distributed else None,
                    broker_url=env.get("WASTECOACH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
                    if distributed else None,
                    pids=tuple(proc.pid for proc in procs))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if moto is not None:
            moto.stop()
        stack.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["embedded", "distributed"], default="embedded")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--scans", type=int, default=20, help="scans per session")
    parser.add_argument("--trace", type=int, default=0, metavar="N",
                        help="instead of the levels, run N scans on one session and print when "
                             "each event arrived (ms after scan.start) and the server's timings")
    parser.add_argument("--think-ms", type=float, nargs=2, default=[500, 1500],
                        metavar=("MIN", "MAX"), help="pause between a user's scans")
    args = parser.parse_args()

    with serve_stack(args.mode) as base:
        asyncio.run(run_level(base, 2, 5, (0.0, 0.01)))  # warm-up: connections, pools, JIT caches
        lo, hi = args.think_ms
        if args.trace:
            asyncio.run(trace_scans(base, args.trace))
            return
        print(f"mode={args.mode} scans/session={args.scans} think={lo:.0f}-{hi:.0f} ms")
        print("sessions  scans  scans/s  first p50/p95/p99 (ms)   end-to-end p50/p95/p99 (ms)")
        for n in args.sessions:
            r = asyncio.run(run_level(base, n, args.scans, (lo / 1000, hi / 1000)))
            print(f"{n:8d} {r['scans']:6.0f} {r['scans_per_s']:8.1f}   "
                  f"{r['first_p50']:5.2f} / {r['first_p95']:5.2f} / {r['first_p99']:5.2f}"
                  f"        {r['e2e_p50']:5.2f} / {r['e2e_p95']:5.2f} / {r['e2e_p99']:6.2f}")


if __name__ == "__main__":
    main()
