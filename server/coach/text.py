"""Small text helpers shared by the coach's backends: streaming chunks, script detection.

Kept free of knowledge-base and I/O imports so both backends and the chat guard can use them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

from protocol.messages import Locale

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


# Unicode ranges that matter for deciding which language a question is in. Anything else that
# is a letter counts as "other" (Japanese kana, Cyrillic, Arabic, Thai, ...).
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_LATIN = re.compile(r"[A-Za-z]")
_HAN = re.compile(r"[\u4e00-\u9fff]")


def detect_language(text: str) -> Locale | None:
    """The supported language ``text`` is written in, or ``None`` when it is neither.

    A script count is enough here: the coach only speaks Korean and English, and the two do not
    share a script. Han characters are tolerated inside Korean text (mixed script is common in
    product names) but a question made of Han alone is treated as Chinese, which we do not
    support. Digits and punctuation vote for nothing.
    """
    hangul = len(_HANGUL.findall(text))
    latin = len(_LATIN.findall(text))
    letters = sum(1 for ch in text if ch.isalpha())
    if letters == 0:
        return None
    other = letters - hangul - latin
    if hangul and hangul >= other:
        return Locale.KO
    if _HAN.search(text) and not hangul:
        return None
    if latin and latin >= other * 2:
        return Locale.EN
    return None
