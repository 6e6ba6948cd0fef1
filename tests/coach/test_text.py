"""Delta chunking and Korean particles."""

from __future__ import annotations

import pytest

from server.coach.korean import euro, particle
from server.coach.text import chunks, join_sentences


@pytest.mark.parametrize(
    "sentence",
    [
        "Rinse it with lukewarm water.",
        " leading space",
        "뚜껑은 떼어서 따로 버려 주세요.",
        "one",
        "",
    ],
)
def test_chunks_join_back_exactly(sentence: str) -> None:
    assert "".join(chunks(sentence)) == sentence


def test_chunks_are_word_sized() -> None:
    assert list(chunks("Take the cap off.")) == ["Take ", "the ", "cap ", "off."]


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
