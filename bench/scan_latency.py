"""Latency of real scans in embedded mode: the product's own stages, real photos.

Starts ``wastecoach serve`` (embedded, real classifier, coach and collection points) and sends
held-out TrashNet photos one at a time as inline camera frames, with a Seoul location. For each
scan it records, from sending ``scan.start``:

* the time to ``scan.classified`` (issue 4: p50 under 100 ms);
* the time from ``scan.classified`` to the first ``coaching.delta`` (issue 3: under 150 ms);
* the time to ``scan.done``.

Scans that stop to ask (``scan.clarify``) are answered at once with the first choice, and the
first-token time is then measured from the confirmed classification.

    python bench/scan_latency.py --photos ../shared/data/trashnet --count 100
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
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
from server.vision.dataset import list_samples, split  # noqa: E402
from tests.conftest import free_port  # noqa: E402


async def run(base: str, photos: list[Path]) -> dict[str, list[float]]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        token = (await http.post("/api/v1/auth/guest")).json()["access_token"]
    url = base.replace("http://", "ws://") + "/api/v1/coach/ws"
    out: dict[str, list[float]] = {"classified": [], "first_token": [], "done": []}
    asked = 0
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "session.start", "token": token, "locale": "ko"}))
        json.loads(await ws.recv())
        for n, photo in enumerate(photos):
            data = base64.b64encode(photo.read_bytes()).decode()
            rid = f"p{n}"
            started = time.perf_counter()
            await ws.send(json.dumps({
                "type": "scan.start", "request_id": rid,
                "image": {"kind": "inline", "content_type": "image/jpeg", "data": data},
                "location": {"lat": 37.5665, "lon": 126.978},
            }))
            classified_at = None
            first_token = False
            while True:
                event = json.loads(await ws.recv())
                now = time.perf_counter()
                if event.get("request_id") != rid:
                    continue
                kind = event["type"]
                if kind == "scan.classified":
                    if classified_at is None:
                        out["classified"].append((now - started) * 1000)
                    classified_at = now
                elif kind == "scan.clarify":
                    asked += 1
                    choice = event["choices"][0]["label"]
                    await ws.send(json.dumps({"type": "scan.clarify.answer", "request_id": rid,
                                              "choice": choice}))
                elif kind == "coaching.delta" and not first_token:
                    first_token = True
                    assert classified_at is not None
                    out["first_token"].append((now - classified_at) * 1000)
                elif kind == "scan.done":
                    assert event["status"] == "completed", event
                    out["done"].append((now - started) * 1000)
                    break
    print(f"{len(photos)} scans, {asked} asked to clarify")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared/data/trashnet")
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    _, holdout = split(list_samples(args.photos))
    photos = [s.path for s in holdout][: args.count]

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), WASTECOACH_PORT=str(port),
               WASTECOACH_DATA_DIR=tempfile.mkdtemp(prefix="wc-lat-"),
               WASTECOACH_LOG_LEVEL="warning",
               WASTECOACH_ACCOUNTS__SCANS_PER_MINUTE="100000",
               WASTECOACH_ACCOUNTS__SCANS_PER_DAY="100000",
               WASTECOACH_ACCOUNTS__GUESTS_PER_MINUTE="100000",
               WASTECOACH_ACCOUNTS__GUESTS_PER_DAY="100000",
               # Every client comes from 127.0.0.1: the per-address connection caps are not
               # measured here either.
               WASTECOACH_SESSION__MAX_CONNECTIONS_PER_ADDRESS="100000",
               WASTECOACH_SESSION__MAX_UNAUTHENTICATED_PER_ADDRESS="100000")
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], cwd=ROOT, env=env)
    try:
        wait_http(base, proc)
        asyncio.run(run(base, photos[:5]))  # warm-up
        result = asyncio.run(run(base, photos))
        for name, label in (("classified", "scan.start → scan.classified"),
                            ("first_token", "scan.classified → first coaching.delta"),
                            ("done", "scan.start → scan.done")):
            values = result[name]
            print(f"{label:42s} p50 {percentile(values, 50):7.2f}  p95 "
                  f"{percentile(values, 95):7.2f}  p99 {percentile(values, 99):7.2f} ms")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
