"""The one language detector, as the chat guard and item search both use it."""

from __future__ import annotations

import pytest

from protocol.messages import Locale
from server.language import Script, detect_language, detect_script


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("what if it is greasy?", Locale.EN),
        ("뚜껑이 금속이면요?", Locale.KO),
        ("PET 병 라벨은 어디에 버려요?", Locale.KO),
        ("這個瓶子怎麼回收", None),
        ("このボトルはどう捨てますか", None),
        ("Как выбросить бутылку?", None),
        ("123 ???", None),
    ],
)
def test_detect_language(question: str, expected: Locale | None) -> None:
    assert detect_language(question) is expected


def test_detect_script() -> None:
    assert detect_script("닭뼈 어디에") is Script.KOREAN
    assert detect_script("chicken 뼈") is Script.KOREAN
    assert detect_script("chicken bone") is Script.LATIN
    assert detect_script("ゴミ箱はどこ") is Script.OTHER
    assert detect_script("мусор") is Script.OTHER
    assert detect_script("123 ?!") is Script.NONE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Han inside Korean text is a product name; Han with no Hangul is Chinese.
        ("生수 페트병", Script.KOREAN),
        ("PET 瓶", Script.OTHER),
        # A single Hangul letter does not make a Japanese sentence Korean.
        ("ゴミ箱 뼈", Script.OTHER),
        # Latin needs twice the letters of other scripts: "café" is English enough,
        # a Russian word with two Latin letters is not.
        ("café cup", Script.LATIN),
        ("PET бутылка", Script.OTHER),
    ],
)
def test_mixed_scripts(text: str, expected: Script) -> None:
    assert detect_script(text) is expected
