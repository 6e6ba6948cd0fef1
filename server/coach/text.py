"""Small text helpers shared by the coach's backends: sentences streamed as word-sized deltas.

Kept free of knowledge-base and I/O imports so every backend can use them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

_WORD = re.compile(r"\S+\s*")


def chunks(sentence: str) -> Iterator[str]:
    """Split a sentence into word-sized deltas (each keeps its trailing space).

    Joining the chunks gives back the sentence exactly, so the deltas a client concatenates
    match the ``text`` of the final result byte for byte.
    """
    pos = 0
    for match in _WORD.finditer(sentence):
        if match.start() > pos:
            # Leading whitespace belongs to the first word so nothing is lost.
            yield sentence[pos : match.end()]
        else:
            yield match.group()
        pos = match.end()
    if pos < len(sentence):
        yield sentence[pos:]


def join_sentences(sentences: list[str]) -> str:
    return " ".join(s.strip() for s in sentences if s.strip())


async def stream_sentences(sentences: list[str], *, lead: str = "") -> AsyncIterator[str]:
    """Deltas whose concatenation is ``join_sentences(sentences)`` (prefixed with ``lead``).

    Yields to the loop between sentences so a cancelled scan stops promptly and other sessions
    are not starved by a long answer.
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
        for delta in chunks(sentence):
            yield delta
        await asyncio.sleep(0)
