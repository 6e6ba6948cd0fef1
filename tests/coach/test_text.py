"""Streaming sentences as deltas, and Korean particles."""

from __future__ import annotations

import pytest

from server.coach.korean import euro, particle
from server.coach.text import join_sentences, stream_sentences


async def _deltas(sentences: list[str], lead: str = "") -> list[str]:
    return [delta async for delta in stream_sentences(sentences, lead=lead)]


async def test_one_delta_per_sentence_joining_back_exactly() -> None:
    sentences = ["Take the cap off.", "  ", " Rinse it. ", "뚜껑은 떼어서 따로 버려 주세요."]
    deltas = await _deltas(sentences)
    assert deltas == ["Take the cap off.", " Rinse it.", " 뚜껑은 떼어서 따로 버려 주세요."]
    assert "".join(deltas) == join_sentences(sentences)


async def test_lead_goes_before_the_first_sentence_only() -> None:
    deltas = await _deltas(["A.", "B."], lead=" ")
    assert deltas == [" A.", " B."]
    assert await _deltas(["", " "], lead=" ") == []


def test_join_sentences_skips_blank() -> None:
    assert join_sentences(["A.", "  ", " B. "]) == "A. B."


@pytest.mark.parametrize(
    ("word", "topic", "direction"),
    [
        ("병", "병은", "병으로"),
        ("캔", "캔은", "캔으로"),
        ("종이", "종이는", "종이로"),
        ("물", "물은", "물로"),  # ㄹ-final takes 로
        ("PET", "PET는", "PET로"),
    ],
)
def test_korean_particles(word: str, topic: str, direction: str) -> None:
    assert particle(word, "은", "는") == topic
    assert euro(word) == direction
