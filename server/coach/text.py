"""Small text helpers shared by the coach's backends: sentences streamed as deltas.

Kept free of knowledge-base and I/O imports so every backend can use them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


def join_sentences(sentences: list[str]) -> str:
    return " ".join(s.strip() for s in sentences if s.strip())


async def stream_sentences(sentences: list[str], *, lead: str = "") -> AsyncIterator[str]:
    """Deltas whose concatenation is ``join_sentences(sentences)`` (prefixed with ``lead``),
    one sentence each.

    The sentences are all written by the time the first is sent, so a delta per word would
    reach the person at the same moment as a delta per sentence, and only cost the server and
    the client more events: each delta is an event in the session's log, with its own seq,
    JSON and WebSocket frame (about 40 a scan per word, 5 to 8 per sentence; "Where a scan's
    CPU goes" in docs/benchmarks.md). Yields to the loop between sentences so a cancelled scan
    stops promptly and other sessions are not starved by a long answer.
    """
    first = True
    for sentence in sentences:
        sentence = sentence.strip()
        if not sentence:
            continue
        if not first:
            sentence = " " + sentence
        elif lead:
            sentence = lead + sentence
        first = False
        yield sentence
        await asyncio.sleep(0)
