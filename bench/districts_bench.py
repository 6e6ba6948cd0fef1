"""Time of one 시군구 lookup, and of loading the shipped boundaries.

    .venv/bin/python bench/districts_bench.py [--points 20000]

Loads ``server/regions/data`` (checksum included) and places a fixed, seeded mix of points
with ``DistrictIndex.place``: three quarters at real collection points (where people stand),
one quarter anywhere in the bounding box of South Korea (much of it sea, which takes the
nearest-district search before it answers "none"). Prints the load time and the per-point
p50 / p95 / p99 / max in microseconds, and how the points fell (inside, near, outside).
Single-threaded, one call per point, as the coach makes it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.locations.normalize import packaged_snapshot  # noqa: E402
from server.regions.districts import load  # noqa: E402


def make_points(n: int, seed: int = 11) -> list[tuple[float, float]]:
    real = []
    with gzip.open(packaged_snapshot(), "rt", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if "lat" in record and "lon" in record:
                real.append((record["lat"], record["lon"]))
    rng = random.Random(seed)
    points = []
    for i in range(n):
        if i % 4 == 3:
            points.append((rng.uniform(33.0, 38.7), rng.uniform(124.5, 131.0)))
        else:
            points.append(rng.choice(real))
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=20_000)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    index = load()
    load_ms = (time.perf_counter() - started) * 1000
    points = make_points(args.points)
    for lat, lon in points[:200]:  # warm up
        index.place(lat, lon)
    times_us: list[float] = []
    how: Counter[str] = Counter()
    for lat, lon in points:
        t0 = time.perf_counter()
        placed = index.place(lat, lon)
        times_us.append((time.perf_counter() - t0) * 1e6)
        how[placed.how] += 1
    times_us.sort()

    def pct(p: float) -> float:
        return times_us[min(len(times_us) - 1, int(p * len(times_us)))]

    print(f"load (checksum, decode, STRtree): {load_ms:.0f} ms for {len(index)} districts")
    print(
        f"lookup of {len(points)} points, microseconds: p50 {pct(0.50):.1f}  p95 {pct(0.95):.1f}"
        f"  p99 {pct(0.99):.1f}  max {times_us[-1]:.1f}  mean {statistics.fmean(times_us):.1f}"
    )
    print("placed: " + ", ".join(f"{k} {v}" for k, v in sorted(how.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
