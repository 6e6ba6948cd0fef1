"""How much hostile clients slow an honest one: the pre-auth stall (issue 13).

Starts the embedded server (instant test stages, as ``bench/orchestration.py``) and one honest
client that signs in and scans every 200 ms, measuring ``scan.start`` → ``scan.done``. It runs
twice as long as ``--seconds``: first alone, then while ``--attackers`` hostile clients loop
without pause on what a probe found to stall the server before the limits of issue 13:

* a 1.5 MiB frame of about 150,000 keys before ``session.start`` (refused at 16 KiB unparsed);
* a frame nested 1,000 deep, and one of 100,000 values, after signing in (refused before a
  full parse);
* garbage frames until the server closes with 1008, then a new connection.

It prints the honest client's latency in both phases and how many hostile frames the server
answered.

    python bench/hostile_stall.py --attackers 8 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.orchestration import percentile, wait_http  # noqa: E402
from tests.conftest import free_port  # noqa: E402

IMAGE = base64.b64encode(b"JPEG" * 64).decode()
HUGE_PRE_AUTH = '{"type":"session.start",' + ",".join(
    f'"{i:x}":0' for i in range(150_000)
) + "}"
DEEP = '{"type": "ping", "x": ' + "[" * 1_000 + "]" * 1_000 + "}"
WIDE = '{"type": "ping", "x": [' + ",".join("0" for _ in range(100_000)) + "]}"


async def honest(url: str, token: str, until: float, latencies: list[float]) -> None:
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "session.start", "token": token}))
        await ws.recv()
        n = 0
        while time.monotonic() < until:
            await asyncio.sleep(0.2)
            n += 1
            rid = f"h{n}"
            started = time.perf_counter()
            await ws.send(json.dumps({
                "type": "scan.start", "request_id": rid,
                "image": {"kind": "inline", "content_type": "image/jpeg", "data": IMAGE},
            }))
            while True:
                text = await ws.recv()
                if '"scan.done"' in text and json.loads(text)["request_id"] == rid:
                    latencies.append((time.perf_counter() - started) * 1000)
                    break


async def attacker(url: str, token: str, until: float, answered: list[int]) -> None:
    while time.monotonic() < until:
        try:
            async with websockets.connect(url, max_size=None, max_queue=None) as ws:
                await ws.send(HUGE_PRE_AUTH)
                await ws.recv()
                answered[0] += 1
                await ws.send(json.dumps({"type": "session.start", "token": token}))
                await ws.recv()  # session.ready
                await ws.recv()  # rate_limits.updated
                for frame in (DEEP, WIDE):
                    await ws.send(frame)
                    await ws.recv()
                    answered[0] += 1
                while time.monotonic() < until:  # garbage until the 1008 close
                    await ws.send("{not json")
                    await ws.recv()
                    answered[0] += 1
        except websockets.ConnectionClosed:
            continue


async def phase(base: str, attackers: int, seconds: float) -> tuple[list[float], int]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        tokens = [(await http.post("/api/v1/auth/guest")).json()["access_token"]
                  for _ in range(attackers + 1)]
    url = base.replace("http://", "ws://") + "/api/v1/coach/ws"
    until = time.monotonic() + seconds
    latencies: list[float] = []
    answered = [0]
    await asyncio.gather(
        honest(url, tokens[0], until, latencies),
        *(attacker(url, token, until, answered) for token in tokens[1:]),
    )
    return latencies, answered[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attackers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), WASTECOACH_PORT=str(port),
               WASTECOACH_DATA_DIR=tempfile.mkdtemp(prefix="wc-hostile-"),
               WASTECOACH_PUBLIC_URL=base, WASTECOACH_LOG_LEVEL="error",
               WASTECOACH_STAGES_FACTORY="tests.support.stages:build",
               WASTECOACH_ACCOUNTS__SCANS_PER_MINUTE="100000",
               WASTECOACH_ACCOUNTS__SCANS_PER_DAY="100000",
               WASTECOACH_ACCOUNTS__GUESTS_PER_MINUTE="100000",
               WASTECOACH_ACCOUNTS__GUESTS_PER_DAY="1000000",
               # Every client comes from 127.0.0.1: the per-address connection caps are not
               # measured here either.
               WASTECOACH_SESSION__MAX_CONNECTIONS_PER_ADDRESS="100000",
               WASTECOACH_SESSION__MAX_UNAUTHENTICATED_PER_ADDRESS="100000")
    server = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], cwd=ROOT, env=env)
    try:
        wait_http(base, server)
        print(f"embedded server, 1 honest client scanning every 200 ms, {args.seconds:.0f} s "
              "per phase")
        print("phase            scans  end-to-end p50 / p95 / p99 / max (ms)   hostile frames")
        for name, attackers in (("alone", 0), (f"{args.attackers} attackers", args.attackers)):
            latencies, answered = asyncio.run(phase(base, attackers, args.seconds))
            print(f"{name:15s} {len(latencies):6d}   {percentile(latencies, 50):6.2f} / "
                  f"{percentile(latencies, 95):6.2f} / {percentile(latencies, 99):6.2f} / "
                  f"{max(latencies):7.2f}   {answered:8d}  "
                  f"(mean {statistics.fmean(latencies):.2f})")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
