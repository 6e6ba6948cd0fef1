"""Reading which bins a sentence sends the reader to: the vocabulary the answer checks share."""

from __future__ import annotations

import pytest

from protocol.streams import Stream
from server.coach.bins import mentioned_bins, named_bins


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("버리는 곳: 일반종량제봉투.", [Stream.GENERAL]),
        ("It goes in the general-waste bag.", [Stream.GENERAL]),
        ("종이류와 섞지 말고 종이팩 수거함에 넣으세요.", [Stream.PAPER_PACK]),
        ("Keep it out of the paper bin and put it in the carton bin.", [Stream.PAPER_PACK]),
        ("아니요, 유리병 분리수거함에 넣으면 안 돼요.", []),
        ("Broken glass cannot go in the glass bottle bin.", []),
        ("No, it does not go in the can and metal recycling bin.", []),
        ("영수증은 감열지라서 종이로 재활용되지 않습니다.", []),
        (
            "라벨을 떼어 비닐류로 버리고, 병은 투명 페트병 전용 수거함에 넣으세요.",
            [Stream.VINYL, Stream.CLEAR_PET],
        ),
        # A condition is not a negation: the bin after it is where the thing goes.
        ("헹궈도 지워지지 않으면 일반종량제봉투에 버리세요.", [Stream.GENERAL]),
        (
            "If food will not rinse off, it cannot be recycled: put it in the general-waste bag.",
            [Stream.GENERAL],
        ),
        ("Put it in a battery bin, never in a rubbish bag.", [Stream.BATTERY]),
        ("마트에 가져가면 보증금을 돌려받습니다.", [Stream.GLASS]),
        # A material is not a bin.
        ("유리 부분은 조심하세요.", []),
    ],
)
def test_named_bins(text: str, expected: list[Stream]) -> None:
    assert named_bins(text) == expected


def test_mentioned_bins_counts_negated_ones_too() -> None:
    assert mentioned_bins("종이류에 넣으면 안 돼요") == {Stream.PAPER}
