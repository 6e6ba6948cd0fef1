"""Normalisation helpers of item search."""

from __future__ import annotations

from server.search.text import content_tokens, jamo, key, ngrams


def test_key_drops_spaces_punctuation_and_case() -> None:
    assert key(" 택배  상자! ") == "택배상자"
    assert key("Pizza-Box") == "pizzabox"
    assert key("ＡＡ건전지") == "aa건전지"  # full-width letters folded by NFKC


def test_jamo_decomposes_and_folds_look_alike_vowels() -> None:
    assert jamo("닭") == "ㄷㅏㄺ"
    assert jamo("패트") == jamo("페트")
    assert jamo("abc") == "abc"


def test_ngrams_have_boundaries() -> None:
    assert ngrams("ab") == {"^ab", "ab$"}
    assert ngrams("a") == {"^a$"}


def test_content_tokens_remove_question_framing() -> None:
    assert content_tokens("치킨 먹고 남은 뼈 음식물 쓰레기야?") == ["치킨", "뼈"]
    assert content_tokens("카드 영수증 종이로 버려도 돼요?") == ["카드", "영수증"]
    assert content_tokens("how do I throw away chicken bones") == ["chicken", "bones"]
    assert content_tokens("are fish bones food waste") == ["fish", "bones"]
    # When the guess is all there is, it is the question.
    assert content_tokens("음식물 쓰레기") == ["음식물"]
