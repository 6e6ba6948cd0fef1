"""Soak: N sessions scanning for D seconds on a distributed stack, no fault; every scan must end
and every invariant of the fault suite must hold.

Usage: ``.venv/bin/python bench/soak.py --sessions 50 --seconds 60 --workers 2``

It starts the same private PostgreSQL, Redis and RabbitMQ instances as the fault suite
(``tests/faults/services.py``), a real ``wastecoach serve`` and ``--workers`` real Celery
workers with the stand-in stages, and ``--sessions`` reconnecting protocol clients
(``tests/faults/load.py``) that scan one after another. At the end it prints the scans by
outcome, the rate, the anomalies found by ``tests/faults/checks.py`` (gaps, duplicates, scans
without an end, database rows that disagree) and the end-to-end latency of completed scans.
Exit status 1 if any anomaly was found.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

from tests.conftest import free_port
from tests.faults.harness import FaultStack, settle
from tests.faults.load import Load
from tests.faults.services import missing_binaries, private_services


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def soak(stack: FaultStack, sessions: int, seconds: float) -> int:
    load = await Load.start(stack.server.base_url, stack.server.ws_url, sessions)
    await load.wait_connected()
    started = time.time()
    await asyncio.sleep(seconds)
    verdict = await settle(load, stack, timeout=60)
    elapsed = time.time() - started
    outcomes: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    for session in load.sessions:
        for record in session.scans.values():
            outcomes[record.status or "no end"] += 1
            if record.status == "completed" and record.done_at and record.accepted_at:
                latencies.append((record.done_at - record.sent_at) * 1000)
    total = sum(outcomes.values())
    print(f"sessions {sessions}, {elapsed:.0f} s: {total} scans, {dict(outcomes)}, "
          f"{outcomes['completed'] / elapsed:.1f} completed/s")
    if latencies:
        p50, p95, p99 = (percentile(latencies, q) for q in (50, 95, 99))
        print(f"end to end (ms): p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  "
              f"max {max(latencies):.1f}  mean {statistics.fmean(latencies):.1f}")
    print(f"anomalies: {len(verdict.violations)}")
    for line in verdict.violations[:20]:
        print("  ", line)
    return 1 if verdict.violations else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    reason = missing_binaries()
    if reason is not None:
        print(f"cannot run: {reason}")
        return 2
    from moto.server import ThreadedMotoServer

    s3_port = free_port()
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    s3.start()
    try:
        with private_services() as services, tempfile.TemporaryDirectory() as tmp:
            stack = FaultStack.create(services, Path(tmp), f"http://127.0.0.1:{s3_port}")
            stack.start(args.workers)
            try:
                return asyncio.run(soak(stack, args.sessions, args.seconds))
            finally:
                stack.stop()
    finally:
        s3.stop()


if __name__ == "__main__":
    sys.exit(main())
