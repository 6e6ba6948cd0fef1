"""Latency of the nearest-collection-point search over the whole packaged data set.

    .venv/bin/python bench/locations_bench.py [--queries 2000] [--pg-admin postgresql://...]

Loads the packaged snapshot (16,555 points) through the real migrations and importer into a
fresh SQLite file and a fresh PostgreSQL database (PostGIS), then times
``server.locations.service.nearby`` for a fixed, seeded mix of queries: three quarters near
real points (where people with bins around them stand), one quarter anywhere in the country,
over the streams people scan most, with the default radius (20 km) and limit 5. Each figure is
one call in an open session ("search") and one call with its own session and commit, as an
HTTP request does ("request"). Prints p50 / p95 / p99 / max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol.streams import Stream
from server.db import Database
from server.locations import service
from server.locations.cli import run_import
from server.locations.normalize import (
    PointRecord,
    packaged_snapshot,
    read_snapshot,
)
from server.migrate import upgrade

STREAMS = (
    Stream.BATTERY,
    Stream.LAMP,
    Stream.CLOTHING,
    Stream.MEDICINE,
    Stream.PLASTIC,
    Stream.CLEAR_PET,
    Stream.PAPER,
    Stream.ELECTRONICS,
)

Query = tuple[float, float, Stream]


def make_queries(records: list[PointRecord], n: int, seed: int = 7) -> list[Query]:
    rng = random.Random(seed)
    queries: list[Query] = []
    for i in range(n):
        if i % 4 == 3:
            lat, lon = rng.uniform(34.5, 38.2), rng.uniform(126.3, 129.4)
        else:
            r = rng.choice(records)
            lat, lon = r.lat + rng.uniform(-0.01, 0.01), r.lon + rng.uniform(-0.01, 0.01)
        queries.append((lat, lon, rng.choice(STREAMS)))
    return queries


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return (
        f"p50 {pct(50):6.2f}  p95 {pct(95):6.2f}  p99 {pct(99):6.2f}  "
        f"max {ordered[-1]:6.2f}  mean {statistics.fmean(ordered):6.2f} ms  (n={len(ordered)})"
    )


async def measure(
    db: Database, queries: list[Query], warmup: int
) -> tuple[list[float], list[float]]:
    for lat, lon, stream in queries[:warmup]:
        async with db.session() as session:
            await service.nearby(session, lat=lat, lon=lon, stream=stream, limit=5)
    in_session: list[float] = []
    async with db.session() as session:
        for lat, lon, stream in queries:
            t0 = time.perf_counter()
            await service.nearby(session, lat=lat, lon=lon, stream=stream, limit=5)
            in_session.append((time.perf_counter() - t0) * 1000)
    per_request: list[float] = []
    for lat, lon, stream in queries:
        t0 = time.perf_counter()
        async with db.session() as session:
            await service.nearby(session, lat=lat, lon=lon, stream=stream, limit=5)
        per_request.append((time.perf_counter() - t0) * 1000)
    return in_session, per_request


async def bench(url: str, label: str, records: list[PointRecord], queries: list[Query]) -> None:
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    try:
        await run_import(db, records, show_progress=False)
        search, request = await measure(db, queries, warmup=min(200, len(queries)))
    finally:
        await db.dispose()
    print(f"{label:<22} search   {summary(search)}")
    print(f"{label:<22} request  {summary(request)}")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument(
        "--pg-admin",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="an existing database to connect to for CREATE/DROP DATABASE; '' skips PostgreSQL",
    )
    args = parser.parse_args(argv)

    records, _ = read_snapshot(packaged_snapshot())
    queries = make_queries(records, args.queries)
    print(f"{len(records)} points, {len(queries)} queries, radius 20 km, limit 5")

    with tempfile.TemporaryDirectory() as tmp:
        await bench(f"sqlite+aiosqlite:///{tmp}/bench.db", "sqlite (aiosqlite)", records, queries)

    if args.pg_admin:
        name = f"wc_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(args.pg_admin)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            base = args.pg_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            await bench(f"{base}/{name}", "postgresql (postgis)", records, queries)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
