"""Live mode under load: N sessions each sending camera frames of real photos.

Starts the real server (distributed: with a real Celery worker) with the real stages, opens N
WebSocket sessions and has each run live mode for the given time at the given frame rate. Each
session shows items one after another, as a person at a sorting bin would: a TrashNet photo
moving across the picture for a second (shifted a little every frame), then held still for a
few seconds, then the next photo. The frames are 640 x 480 JPEGs (quality 70, about 25 KB),
encoded before the run so that the load generator spends its time sending, not encoding.

What it prints:

* ``live.hint`` latency: from sending a frame to receiving its hint (the hint echoes the
  frame's capture time, the client's clock: the same machine), p50 / p95 / p99, over all hints;
  and the p95 of the first and of the last third of the run (a backlog that grows shows as a
  last third slower than the first);
* skipped frames (replaced unseen by newer ones, latest wins) and dropped frames;
* held still to ``scan.classified``: from the first frame of an item held still to the
  ``scan.classified`` of the scan live mode started for it, p50 / p95 / max, and how many
  held items got no scan.

    python bench/live_bench.py --mode embedded --sessions 20 --fps 4 --seconds 60
    python bench/live_bench.py --mode distributed --sessions 20 --fps 4 --seconds 60

Needs ``../shared/data/trashnet`` (the photos). Distributed mode needs PostgreSQL, Redis and
RabbitMQ on their default ports, as ``bench/orchestration.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets
from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.orchestration import percentile, serve_stack  # noqa: E402
from protocol.live import encode_frame  # noqa: E402

TRASHNET = ROOT.parent / "shared" / "data" / "trashnet"
MOVING_S = 1.0
STILL_S = 4.0


@dataclass
class Item:
    moving: list[bytes]
    still: bytes


@dataclass
class Results:
    hints: list[tuple[float, float]] = field(default_factory=list)  # (sent at, latency ms)
    skipped: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    held: int = 0
    held_to_classified: list[float] = field(default_factory=list)
    scans: int = 0
    early: int = 0
    errors: list[str] = field(default_factory=list)


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=70)
    return out.getvalue()


def build_items(count: int, fps: float, seed: int = 3) -> list[Item]:
    classes = sorted(p for p in TRASHNET.iterdir() if p.is_dir()) if TRASHNET.is_dir() else []
    if not classes:
        raise SystemExit(f"no photos under {TRASHNET}")
    rng = random.Random(seed)
    # Round the classes, so that one item is never followed by another of its kind (live
    # mode scans a kind once while it stays in view: two boxes in a row are one cycle).
    per_class = [rng.sample(sorted(c.glob("*.jpg")), -(-count // len(classes))) for c in classes]
    paths = [photos[n] for n in range(len(per_class[0])) for photos in per_class][:count]
    items = []
    for path in paths:
        photo = Image.open(path).convert("RGB").resize((640, 480))
        steps = max(1, round(MOVING_S * fps))
        moving = [jpeg(ImageChops.offset(photo, 40 * (steps - n), 12 * (steps - n)))
                  for n in range(steps)]
        items.append(Item(moving=moving, still=jpeg(photo)))
    return items


async def one_session(base: str, items: list[Item], fps: float, seconds: float,
                      results: Results, offset: float) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        token = (await http.post("/api/v1/auth/guest")).json()["access_token"]
    url = base.replace("http", "ws", 1) + "/api/v1/coach/ws"
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "session.start", "token": token, "locale": "en"}))
        while json.loads(await ws.recv())["type"] != "session.ready":
            pass
        await ws.send(json.dumps({"type": "live.start", "request_id": "live"}))
        sent_at: dict[int, float] = {}
        #: Each item shown: its first frame's number, and when its first still frame went out.
        shown: list[list[float]] = []
        scan_item: dict[str, float] = {}
        done = asyncio.Event()

        async def receive() -> None:
            while True:
                try:
                    text = await ws.recv()
                except websockets.ConnectionClosed:
                    return
                now = time.perf_counter()
                event = json.loads(text)
                kind = event["type"]
                if kind == "live.hint":
                    frame = event["frame"]
                    results.hints.append((sent_at[frame], (now - sent_at[frame]) * 1000))
                    results.skipped += event["skipped"]
                elif kind == "live.dropped":
                    for reason, n in event["counts"].items():
                        results.dropped[reason] = results.dropped.get(reason, 0) + n
                elif kind == "live.scan":
                    results.scans += 1
                    frame = event["frame"]
                    item = [entry for entry in shown if entry[0] <= frame]
                    if item and len(item[-1]) == 3 and frame >= item[-1][1]:
                        scan_item[event["scan_request_id"]] = item[-1][2]
                    else:  # scanned while it was still moving in
                        results.early += 1
                elif kind == "scan.classified" and event["request_id"] in scan_item:
                    start = scan_item.pop(event["request_id"])
                    results.held_to_classified.append((now - start) * 1000)
                elif kind == "error":
                    results.errors.append(f"{event['code']}: {event['message']}")
                elif kind == "live.stopped":
                    done.set()
                    return

        receiver = asyncio.create_task(receive())
        await asyncio.sleep(offset)  # sessions do not send in lockstep
        interval = 1 / fps
        number = 0
        next_at = time.perf_counter()
        end = next_at + seconds
        n_item = 0
        while time.perf_counter() < end:
            item = items[n_item % len(items)]
            n_item += 1
            frames = [*item.moving, *[item.still] * round(STILL_S * fps)]
            for index, image in enumerate(frames):
                if time.perf_counter() >= end:
                    break
                number += 1
                now = time.perf_counter()
                if index == 0:
                    shown.append([number])
                if index == len(item.moving):
                    shown[-1] += [number, now]
                    results.held += 1
                sent_at[number] = now
                await ws.send(encode_frame("live", number, int(time.time() * 1000), image))
                results.sent += 1
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        await asyncio.sleep(1.5)  # the last scans' classification
        await ws.send(json.dumps({"type": "live.stop", "request_id": "live"}))
        try:
            await asyncio.wait_for(done.wait(), 15)
        finally:
            receiver.cancel()


async def run(base: str, sessions: int, fps: float, seconds: float) -> Results:
    items = build_items(12, fps)
    results = Results()
    await asyncio.gather(*(
        one_session(base, items[n % len(items):] + items[: n % len(items)], fps, seconds, results,
                    offset=n / sessions / fps)
        for n in range(sessions)
    ))
    return results


def report(mode: str, sessions: int, fps: float, seconds: float, r: Results) -> None:
    latencies = [lat for _, lat in r.hints]
    ordered = sorted(r.hints)
    third = max(1, len(ordered) // 3)
    first = [lat for _, lat in ordered[:third]]
    last = [lat for _, lat in ordered[-third:]]
    print(f"mode={mode} sessions={sessions} fps={fps:g} seconds={seconds:g}")
    print(f"frames sent {r.sent}, hints {len(r.hints)} ({len(r.hints) / seconds:.1f}/s), "
          f"skipped {r.skipped} ({r.skipped / max(1, r.sent):.1%}), dropped {r.dropped or 0}")
    print(f"live.hint latency ms: p50 {percentile(latencies, 50):.1f}  "
          f"p95 {percentile(latencies, 95):.1f}  p99 {percentile(latencies, 99):.1f}  "
          f"max {max(latencies):.1f}")
    print(f"  p95 first third {percentile(first, 95):.1f}, last third {percentile(last, 95):.1f}")
    held = r.held_to_classified
    if held:
        print(f"held still -> scan.classified ms: p50 {percentile(held, 50):.0f}  "
              f"p95 {percentile(held, 95):.0f}  max {max(held):.0f}  "
              f"({len(held)} of {r.held} items held; {r.scans} scans, {r.early} of them "
              f"while the item was still moving in)")
    else:
        print(f"no scan.classified for {r.held} items held")
    if r.errors:
        print(f"errors: {len(r.errors)}, first: {r.errors[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["embedded", "distributed"], default="embedded")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--fps", type=float, default=4.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with serve_stack(args.mode, stages_factory=None) as base:
        # Warm-up at the full load for a few seconds: the models in every analysis thread, the
        # pools, the first scans' code paths.
        asyncio.run(run(base, args.sessions, args.fps, 5))
        results = asyncio.run(run(base, args.sessions, args.fps, args.seconds))
        report(args.mode, args.sessions, args.fps, args.seconds, results)


if __name__ == "__main__":
    main()
