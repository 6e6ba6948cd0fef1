"""The latency floor of the distributed architecture on this machine, with no product code.

A scan in distributed mode crosses processes a fixed number of times: the client's frame to
the server, the rate-limit check and ``scan.accepted`` in Redis, the job through RabbitMQ to a
worker, the worker's events through Redis (log + pub/sub) back to the server and the client,
the outcome committed in PostgreSQL, and the final events the same way. This benchmark builds
that chain from the same libraries and services (websockets, redis-py, aio-pika, asyncpg,
uvloop; Redis, RabbitMQ, PostgreSQL) with nothing else in it: each process does the least its
step needs, so the times are waits on the hops themselves (including waking up an idle process)
and the least Python can do at each one. Whatever the product adds is measured by
``bench/orchestration.py``; this is what no implementation of the same architecture on the same
machine could go under.

    python bench/floor.py --sessions 1 10 100

The chain, per scan (→ is a wait on another process):

    client → server: limiter (Redis) → append scan.accepted (Redis, pub/sub) → publish job
    (RabbitMQ, persistent, confirmed) → worker: append 5 events (Redis, pub/sub) and insert the
    outcome (PostgreSQL, durable commit) side by side → append bins + done (Redis, pub/sub)
    → server (pub/sub) → client.

The client paces its scans as the orchestration benchmark does (20 per session, 0.5–1.5 s
apart) and measures from sending the request to receiving "done".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

AMQP = os.environ.get("WASTECOACH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS = os.environ.get("WASTECOACH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG = os.environ.get("FLOOR_PG", "")  # a scratch database the benchmark creates

# One event appended to a capped stream and published, as the product's log does.
APPEND = """
local out = {}
for i = 1, #ARGV do
  local seq = redis.call('INCR', KEYS[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, seq .. '-0', 'e', ARGV[i])
  out[#out + 1] = ARGV[i]
end
redis.call('PUBLISH', KEYS[3], table.concat(out, '\\n'))
return 1
"""
LIMIT = """
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('EXPIRE', KEYS[1], 60) end
return used
"""


def keys(session: str) -> list[str]:
    return [f"floor:{{{session}}}:seq", f"floor:{{{session}}}:log", f"floor:{{{session}}}"]


async def server(port: int, queue: str, celery: bool) -> None:
    import aio_pika
    import redis.asyncio as aioredis
    import websockets

    r = aioredis.Redis.from_url(REDIS)
    limit, append = r.register_script(LIMIT), r.register_script(APPEND)
    connection = await aio_pika.connect_robust(AMQP)
    channel = await connection.channel(publisher_confirms=True)
    await channel.declare_queue(queue, durable=True)
    pubsub = r.pubsub()
    sockets: dict[str, websockets.ServerConnection] = {}
    app = celery_app(queue) if celery else None
    if app is not None:
        from kombu.serialization import dumps

    async def relay() -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message and message["type"] == "message":
                session = message["channel"].decode()[len("floor:"):].strip("{}")
                ws = sockets.get(session)
                if ws is not None:
                    for event in message["data"].decode().split("\n"):
                        await ws.send(event)

    async def handle(ws: websockets.ServerConnection) -> None:
        session = uuid.uuid4().hex
        sockets[session] = ws
        await pubsub.subscribe(keys(session)[2])
        try:
            async for text in ws:
                request = json.loads(text)
                await limit(keys=[f"floor:limit:{session}"])
                await append(keys=keys(session), args=[json.dumps(
                    {"type": "scan.accepted", "request_id": request["request_id"]})])
                job = {"session": session, **request}
                if app is None:
                    message = aio_pika.Message(json.dumps(job).encode(),
                                               delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                else:  # as the product's CeleryRunner publishes
                    task = app.amqp.as_task_v2(uuid.uuid4().hex, "floor.scan", args=[job],
                                               kwargs={}, ignore_result=True)
                    content_type, encoding, body = dumps(task.body, serializer="json")
                    message = aio_pika.Message(
                        body.encode(), headers=task.headers, content_type=content_type,
                        content_encoding=encoding, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await channel.default_exchange.publish(message, routing_key=queue)
        finally:
            sockets.pop(session, None)

    await pubsub.subscribe("floor:ready")
    relay_task = asyncio.create_task(relay())
    async with websockets.serve(handle, "127.0.0.1", port, max_size=None):
        print("ready", flush=True)
        await asyncio.Future()
    relay_task.cancel()


class Steps:
    """What a worker does for one scan: the events and the outcome, nothing else."""

    async def open(self) -> None:
        import asyncpg
        import redis.asyncio as aioredis

        self.append = aioredis.Redis.from_url(REDIS).register_script(APPEND)
        self.pool = await asyncpg.create_pool(PG, min_size=1, max_size=4)
        await self.pool.execute("CREATE TABLE IF NOT EXISTS floor_outcomes (id text PRIMARY KEY,"
                                " outcome json, finished_at timestamptz)")

    async def run(self, job: dict[str, str]) -> None:
        session, rid = job["session"], job["request_id"]
        events = [json.dumps({"type": kind, "request_id": rid, "text": "x" * 60})
                  for kind in ("scan.classified", "coaching.delta", "coaching.delta",
                               "coaching.delta", "coaching.done")]
        await asyncio.gather(
            self.append(keys=keys(session), args=events),
            self.pool.execute("INSERT INTO floor_outcomes VALUES ($1, $2, now()) "
                              "ON CONFLICT DO NOTHING", uuid.uuid4().hex,
                              json.dumps({"r": rid})),
        )
        await self.append(keys=keys(session), args=[
            json.dumps({"type": "bins.suggested", "request_id": rid}),
            json.dumps({"type": "scan.done", "request_id": rid}),
        ])


async def worker(queue: str) -> None:
    """The least a consumer can be: aio-pika on the event loop."""
    import aio_pika

    steps = Steps()
    await steps.open()
    connection = await aio_pika.connect_robust(AMQP)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=128)
    amqp_queue = await channel.declare_queue(queue, durable=True)

    async def run(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await steps.run(json.loads(message.body))
        await message.ack()

    await amqp_queue.consume(run)
    print("ready", flush=True)
    await asyncio.Future()


def celery_app(queue: str) -> Any:
    from workers.app import make_celery

    return make_celery(AMQP, queue)


def celery_worker(queue: str) -> None:
    """The same steps as a Celery task on the product's Celery set-up (workers.pool)."""
    from celery.signals import worker_ready

    from workers.loop import on_worker_loop, worker_loop

    app = celery_app(queue)
    steps = Steps()

    @app.task(name="floor.scan", acks_late=True)  # type: ignore[untyped-decorator]
    def scan(job: dict[str, str]) -> Any:
        return on_worker_loop(steps.run(job))

    worker_loop().run(steps.open())
    # Celery redirects print() to its log on stderr; the parent reads stdout.
    worker_ready.connect(lambda **_: os.write(1, b"ready\n"), weak=False)
    app.worker_main(["worker", "--loglevel", os.environ.get("FLOOR_LOGLEVEL", "warning"),
                     "--concurrency", "32", "--without-gossip", "--without-mingle",
                     "--hostname", f"floor-{queue}@%h"])


async def one_session(url: str, scans: int, totals: list[float]) -> None:
    import websockets

    async with websockets.connect(url, max_size=None) as ws:
        for n in range(scans):
            await asyncio.sleep(random.uniform(0.5, 1.5))
            rid = f"f{n}"
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "scan.start", "request_id": rid}))
            while True:
                event = json.loads(await ws.recv())
                if event["type"] == "scan.done" and event["request_id"] == rid:
                    totals.append((time.perf_counter() - started) * 1000)
                    break


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--scans", type=int, default=20)
    parser.add_argument("--consumer", choices=["aio-pika", "celery"], default="aio-pika",
                        help="what runs the worker's steps: a bare aio-pika consumer, or a "
                             "Celery task on the product's Celery app and pool")
    parser.add_argument("--role", choices=["server", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import uvloop

    celery = args.consumer == "celery"
    if args.role == "server":
        uvloop.run(server(args.port, args.queue, celery))
        return
    if args.role == "worker":
        if celery:
            celery_worker(args.queue)
        else:
            uvloop.run(worker(args.queue))
        return

    from tests.support.pg import scratch_database

    with scratch_database("wc_floor") as url:
        run(args.consumer, args.sessions, args.scans, url.replace("+asyncpg", ""))


def run(consumer: str, levels: list[int], scans: int, pg_url: str) -> None:
    from tests.conftest import free_port

    port, queue = free_port(), f"floor.{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, PYTHONPATH=ROOT, FLOOR_PG=pg_url)
    procs = [
        subprocess.Popen([sys.executable, __file__, "--role", role, "--port", str(port),
                          "--queue", queue, "--consumer", consumer],
                         stdout=subprocess.PIPE, text=True, env=env)
        for role in ("worker", "server")
    ]
    try:
        for proc in procs:  # Celery's worker prints a banner first
            assert proc.stdout is not None
            while not (line := proc.stdout.readline()).strip().endswith("ready"):
                if not line:
                    raise RuntimeError("a process of the benchmark did not start")
        url = f"ws://127.0.0.1:{port}"
        asyncio.run(_warm_up(url))
        print(f"consumer={consumer}")
        print("sessions  scans   end-to-end p50 / p95 / p99 (ms)")
        for sessions in levels:
            totals: list[float] = []
            asyncio.run(_level(url, sessions, scans, totals))
            print(f"{sessions:8d} {len(totals):6d}   {statistics.median(totals):6.2f} / "
                  f"{percentile(totals, 95):6.2f} / {percentile(totals, 99):6.2f}")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


async def _warm_up(url: str) -> None:
    import websockets

    async with websockets.connect(url) as ws:
        await asyncio.sleep(0.2)  # the server subscribes to the session's channel
        for n in range(20):
            await ws.send(json.dumps({"type": "scan.start", "request_id": f"w{n}"}))
            while json.loads(await ws.recv())["type"] != "scan.done":
                pass


async def _level(url: str, sessions: int, scans: int, totals: list[float]) -> None:
    await asyncio.gather(*(one_session(url, scans, totals) for _ in range(sessions)))


if __name__ == "__main__":
    main()
