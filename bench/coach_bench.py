"""Time from a classification to the first embedded coaching token (and to the last).

The target (issue 3) is a first token within 150 ms of the classification. The knowledge base
is loaded once before timing, as the server does at start-up; its cold load time is printed
separately. Classifications cycle through every stream with the signals that change the
composition (low confidence with an alternative, heavy contamination, attached parts).

    .venv/bin/python bench/coach_bench.py [--iterations 5000]
        [--llm-base-url http://127.0.0.1:PORT/v1 --llm-iterations 20]

With ``--llm-base-url`` it also times the LLM coach's first token against that
OpenAI-compatible server (e.g. llama-cpp-python serving SmolLM2, as in the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol.messages import Alternative, Classification, Locale, OfficialCategory, Signal
from protocol.streams import OFFICIAL_PATH, Stream
from server.coach.composer import EmbeddedCoach
from server.coach.llm import LLMCoach
from server.contracts import CoachingResult, CoachStage, ScanInput
from server.knowledge.kb import KnowledgeBase
from server.settings import OpenAISettings

LABELS = {
    Stream.CLEAR_PET: "pet_bottle",
    Stream.PLASTIC: "plastic",
    Stream.PAPER: "cardboard",
    Stream.GLASS: "glass",
    Stream.METAL: "can",
    Stream.BATTERY: "battery",
    Stream.STYROFOAM: "styrofoam",
}


def cases() -> list[Classification]:
    out: list[Classification] = []
    for stream in Stream:
        major, middle = OFFICIAL_PATH[stream]
        label = LABELS.get(stream, stream.value)
        for variant in range(3):
            out.append(
                Classification(
                    label=label,
                    name_ko="물건",
                    name_en="item",
                    stream=stream,
                    category=OfficialCategory(major=major, middle=middle),
                    confidence=0.45 if variant == 1 else 0.93,
                    contamination=Signal(
                        value="heavy" if variant == 2 else "clean", confidence=0.8
                    ),
                    parts=[
                        Signal(value="label", confidence=0.7),
                        Signal(value="cap", confidence=0.7),
                    ]
                    if variant == 2
                    else [],
                    alternatives=[
                        Alternative(label="plastic", stream=Stream.PLASTIC, confidence=0.3)
                    ]
                    if variant == 1
                    else [],
                    model="bench",
                )
            )
    return out


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


async def time_coach(
    coach: CoachStage,
    inputs: list[Classification],
    iterations: int,
    locales: tuple[Locale, ...] = (Locale.EN, Locale.KO),
) -> tuple[list[float], list[float], list[CoachingResult]]:
    first_ms: list[float] = []
    total_ms: list[float] = []
    results: list[CoachingResult] = []
    for i in range(iterations):
        classification = inputs[i % len(inputs)]
        locale = locales[i % len(locales)]
        scan = ScanInput(
            scan_id=f"s{i}",
            request_id="r",
            session_id="x",
            user_id="u",
            locale=locale,
            image=b"",
            content_type="image/jpeg",
        )
        t0 = time.perf_counter()
        stream: AsyncIterator[str | CoachingResult] = coach.coach(scan, classification)
        first = await anext(stream)
        t1 = time.perf_counter()
        assert isinstance(first, str) and first
        async for event in stream:
            if isinstance(event, CoachingResult):
                results.append(event)
        t2 = time.perf_counter()
        first_ms.append((t1 - t0) * 1000)
        total_ms.append((t2 - t0) * 1000)
    return first_ms, total_ms, results


def report(name: str, values: list[float]) -> None:
    print(
        f"{name:>22}: p50 {percentile(values, 50):.3f} ms  p95 {percentile(values, 95):.3f} ms"
        f"  p99 {percentile(values, 99):.3f} ms  max {max(values):.3f} ms"
    )


async def run(iterations: int, llm_base_url: str | None, llm_iterations: int) -> None:
    started = time.perf_counter()
    kb = KnowledgeBase.load()
    load_ms = (time.perf_counter() - started) * 1000
    coach = EmbeddedCoach(kb)
    inputs = cases()
    first_ms, total_ms, _ = await time_coach(coach, inputs, iterations)
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    print(
        f"knowledge base cold load: {load_ms:.1f} ms ({len(kb.items)} items, {len(kb.rules)} rules)"
    )
    print(
        f"embedded: {iterations} scans ({len(inputs)} distinct classifications, ko/en alternating)"
    )
    report("embedded first token", first_ms)
    report("embedded whole", total_ms)
    if llm_base_url is None:
        return
    settings = OpenAISettings(
        api_key="bench",
        base_url=llm_base_url,
        chat_model="local",
        timeout_s=120,
        first_token_timeout_s=60,
    )
    llm = LLMCoach(settings, kb, max_tokens=96)
    english = [c for c in inputs if c.confidence > 0.9][:llm_iterations]
    first_ms, total_ms, results = await time_coach(llm, english, llm_iterations, (Locale.EN,))
    await llm.aclose()
    fallbacks = sum(1 for r in results if r.fallback_reason)
    print(f"llm: {llm_iterations} English scans against {llm_base_url}, {fallbacks} fell back")
    report("llm first token", first_ms)
    report("llm whole", total_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--llm-base-url", default=None)
    parser.add_argument("--llm-iterations", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.iterations, args.llm_base_url, args.llm_iterations))


if __name__ == "__main__":
    main()
