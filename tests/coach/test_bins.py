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
        ("Receipts and shipping labels: neither can be recycled as paper.", []),
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
        # A bin named as the place of a harm explains why not; it does not direct there.
        ("건전지를 종량제봉투에 넣으면 수거차 화재의 원인이 됩니다.", []),
        ("약을 종량제봉투로 버리면 성분이 하천과 토양에 남습니다.", []),
        ("In a rubbish bag they pollute soil and start fires in collection trucks.", []),
        # ...but the hypothetical alone, or the harm alone, leaves a direction a direction.
        ("일반종량제봉투에 버리면 됩니다.", [Stream.GENERAL]),
        ("Put it in the rubbish bag to avoid fires.", [Stream.GENERAL]),
        ("종량제봉투에 넣으세요. 화재 위험이 없습니다.", [Stream.GENERAL]),
        ("종량제봉투에 버리면 토양 오염 걱정은 없어요.", [Stream.GENERAL]),
        ("종량제봉투에 들어가지 않는 큰 물건은 따로 수거합니다.", []),
        # A material is not a bin.
        ("유리 부분은 조심하세요.", []),
    ],
)
def test_named_bins(text: str, expected: list[Stream]) -> None:
    assert named_bins(text) == expected


def test_mentioned_bins_counts_negated_ones_too() -> None:
    assert mentioned_bins("종이류에 넣으면 안 돼요") == {Stream.PAPER}
