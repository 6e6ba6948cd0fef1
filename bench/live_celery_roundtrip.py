"""The road not taken: a Celery round trip per live frame, measured.

Live mode analyses camera frames in the API process and sends only the scans to the workers
(docs/protocol.md section 15.5). This benchmark measures the alternative under the same load:
every frame goes to RabbitMQ as a Celery task, a Celery worker (prefork, one process a core)
decodes, measures and classifies it exactly as ``server.live.analyser`` does, and publishes the
hint on Redis, where the API process would relay it to the socket. The time measured is from
publishing the task to receiving the hint on Redis; the relay to the socket is left out, so the
figure flatters this design a little.

    python bench/live_celery_roundtrip.py --sessions 20 --fps 4 --seconds 60

Needs RabbitMQ and Redis on their default ports and ``../shared/data/trashnet``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from celery import Celery

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.orchestration import percentile  # noqa: E402

BROKER = os.environ.get("WASTECOACH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS = os.environ.get("WASTECOACH_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("LIVE_BENCH_QUEUE", "wastecoach.live-bench")

app = Celery("live-bench", broker=BROKER)
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True,
                task_default_queue=QUEUE, worker_prefetch_multiplier=1)
_analyser = None
_redis = None


@app.task(name="live_bench.analyse")
def analyse(channel: str, frame: int, image_b64: str) -> None:
    """What a worker would do per frame: the live analysis, then the hint onto Redis."""
    global _analyser, _redis
    import redis

    from server.live.analyser import FrameAnalyser
    from server.vision.embedded import EmbeddedClassifier

    if _analyser is None:
        _analyser = FrameAnalyser(EmbeddedClassifier())
        _redis = redis.Redis.from_url(REDIS)
    analysis = _analyser._analyse(base64.b64decode(image_b64), None)
    assert _redis is not None
    _redis.publish(channel, json.dumps({
        "frame": frame, "label": analysis.classification.label,
        "quality": analysis.measured.quality.model_dump(),
    }))


async def session(n: int, images: list[str], fps: float, seconds: float,
                  latencies: list[tuple[float, float]]) -> None:
    import redis.asyncio as aredis

    client = aredis.Redis.from_url(REDIS)
    pubsub = client.pubsub()
    channel = f"live-bench:{uuid.uuid4().hex}"
    await pubsub.subscribe(channel)
    sent: dict[int, float] = {}

    async def receive() -> None:
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            frame = json.loads(message["data"])["frame"]
            now = time.perf_counter()
            latencies.append((sent[frame], (now - sent[frame]) * 1000))

    receiver = asyncio.create_task(receive())
    await asyncio.sleep(n / 20 / fps)
    next_at = time.perf_counter()
    end = next_at + seconds
    frame = 0
    while time.perf_counter() < end:
        frame += 1
        sent[frame] = time.perf_counter()
        await asyncio.to_thread(analyse.apply_async, (channel, frame, images[frame % len(images)]))
        next_at += 1 / fps
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    await asyncio.sleep(5)  # what is still queued
    receiver.cancel()
    await pubsub.aclose()
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--fps", type=float, default=4.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    from bench.live_bench import build_items

    images = [base64.b64encode(item.still).decode() for item in build_items(12, args.fps)]
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.live_celery_roundtrip", "worker",
         "--pool", "prefork", "--concurrency", str(os.cpu_count() or 1), "--loglevel",
         "warning", "-Q", QUEUE, "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        time.sleep(5)
        warm: list[tuple[float, float]] = []
        asyncio.run(session(0, images, 2, 3, warm))  # the models load in each worker process
        latencies: list[tuple[float, float]] = []

        async def run() -> None:
            await asyncio.gather(*(session(n, images, args.fps, args.seconds, latencies)
                                   for n in range(args.sessions)))

        asyncio.run(run())
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    values = [lat for _, lat in latencies]
    expected = int(args.sessions * args.fps * args.seconds)
    ordered = sorted(latencies)
    third = max(1, len(ordered) // 3)
    print(f"celery per frame: sessions={args.sessions} fps={args.fps:g} "
          f"seconds={args.seconds:g} workers={os.cpu_count()}")
    print(f"frames {expected}, hints back {len(values)}")
    print(f"hint latency ms: p50 {percentile(values, 50):.1f}  p95 {percentile(values, 95):.1f}  "
          f"p99 {percentile(values, 99):.1f}  max {max(values):.1f}")
    print(f"  p95 first third {percentile([v for _, v in ordered[:third]], 95):.1f}, "
          f"last third {percentile([v for _, v in ordered[-third:]], 95):.1f}")


if __name__ == "__main__":
    main()
