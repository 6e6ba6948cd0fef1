"""Latency of item search over the eval questions: p50 / p95 / p99, cold and warm cache.

    .venv/bin/python bench/search_bench.py [--rounds 5] [--lexical-only]

Wall-clock time is what a caller waits; CPU time (this thread's, which includes the embedding
model: it runs single-threaded in the calling thread) is what the search itself costs and is
unaffected by other processes competing for the cores.

"cold" embeds every query (the query LRU is cleared before each round); "warm" repeats the
same questions so the query embedding comes from the cache, as for popular questions in
production. Prints the figures; record them in docs/benchmarks.md with the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.knowledge.eval import QUESTIONS, load_questions  # noqa: E402
from server.knowledge.kb import KnowledgeBase  # noqa: E402
from server.search.embeddings import Embedder  # noqa: E402
from server.search.service import ItemSearch  # noqa: E402


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def report(label: str, samples: list[float]) -> None:
    ms = [s * 1000 for s in samples]
    print(
        f"{label:<28} n={len(ms):<5} p50={percentile(ms, 50):6.2f} ms  "
        f"p95={percentile(ms, 95):6.2f} ms  p99={percentile(ms, 99):6.2f} ms  "
        f"max={max(ms):6.2f} ms  mean={statistics.fmean(ms):6.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lexical-only", action="store_true")
    args = parser.parse_args()

    kb = KnowledgeBase.load()
    started = time.perf_counter()
    embedder = None if args.lexical_only else Embedder()
    search = ItemSearch(kb, embedder)
    print(
        f"index built in {1000 * (time.perf_counter() - started):.0f} ms "
        f"({'lexical only' if embedder is None else 'lexical + embeddings'})"
    )
    questions = [q.q for q in load_questions(QUESTIONS)]
    search.search(questions[0])  # first call pays one-off allocations

    cold: list[float] = []
    warm: list[float] = []
    cold_cpu: list[float] = []
    warm_cpu: list[float] = []

    def timed(question: str, wall: list[float], cpu: list[float]) -> None:
        c0, t0 = time.thread_time(), time.perf_counter()
        search.search(question, limit=10)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)

    for _ in range(args.rounds):
        if embedder is not None:
            embedder.clear_cache()  # the "not cached" figures measure the embedding too
        for question in questions:
            timed(question, cold, cold_cpu)
        for question in questions:
            timed(question, warm, warm_cpu)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{len(questions)} eval questions x {args.rounds} rounds; load average {load}")
    report("wall, query not cached", cold)
    report("wall, query cached", warm)
    report("cpu, query not cached", cold_cpu)
    report("cpu, query cached", warm_cpu)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
