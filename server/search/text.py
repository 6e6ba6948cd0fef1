"""Text normalisation for item search: keys, Hangul jamo, character n-grams, fillers.

Korean users misspell by one jamo (``우유곽`` for ``우유팩``'s colloquial twin, ``스치로폼``), drop
or add spaces (``택배 박스`` / ``택배박스``) and wrap the item in a question (``치킨 뼈는 어디에
버려요?``). Matching on decomposed jamo n-grams of a space-free key absorbs the first two; the
filler list below trims the third. Pure functions, no state.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container

_HANGUL_BASE = 0xAC00
_HANGUL_LAST = 0xD7A3
_CHO = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
_JUNG = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
_JONG = ("", *"ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ")

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)

#: Words that frame a question without naming the item. Removed from the query before lexical
#: matching (never from item names); longest first so that "버리는 방법" goes before "버리".
_FILLERS_KO = sorted(
    [
        "어떻게",
        "어디에",
        "어디로",
        "어디",
        "버려야",
        "버려요",
        "버리나요",
        "버리는",
        "버려",
        "버리기",
        "버릴",
        "버림",
        "배출",
        "방법",
        "분리수거",
        "분리배출",
        "재활용",
        "되나요",
        "돼요",
        "되요",
        "인가요",
        "인데",
        "해요",
        "하나요",
        "하죠",
        "할까요",
        "가능",
        "나요",
        "쓰레기",
        "요",
        "은",
        "는",
        "이",
        "가",
        "을",
        "를",
        "에",
        "의",
        "도",
        "좀",
        "이거",
        "이건",
        "그냥",
        "다",
        "쓴",
        "남은",
        "뭐",
        "무슨",
        "어느",
        "통에",
        "봉투",
        "수거함",
        "몇",
        "거",
        "것",
        "건",
        "랑",
        "하고",
        "와",
        "과",
        "이랑",
        "에서",
        "으로",
        "로",
        "까",
        "버리는법",
        "법",
        "같은거",
        "같은",
        "아니죠",
        "아니야",
        "맞나요",
        "맞아요",
        "넣어도",
        "버려도",
        "돼",
        "야",
        "죠",
        "냐",
        "니",
        "지",
        "인지",
        "인가",
        "이야",
        "싸는",
        "먹고",
        "넣으면",
    ],
    key=len,
    reverse=True,
)
_FILLERS_EN = frozenset(
    [
        "a",
        "an",
        "the",
        "my",
        "this",
        "that",
        "these",
        "those",
        "of",
        "for",
        "to",
        "in",
        "into",
        "on",
        "with",
        "and",
        "or",
        "is",
        "are",
        "can",
        "do",
        "does",
        "i",
        "you",
        "we",
        "should",
        "how",
        "where",
        "what",
        "which",
        "bin",
        "goes",
        "go",
        "put",
        "throw",
        "away",
        "out",
        "dispose",
        "disposal",
        "recycle",
        "recycling",
        "recyclable",
        "trash",
        "rubbish",
        "garbage",
        "waste",
        "it",
        "its",
        "be",
        "used",
        "old",
        "empty",
        "please",
        "korea",
        "korean",
        "type",
        "kind",
        "sort",
    ]
)
#: Where the person guesses the answer ("음식물 쓰레기야?", "is it food waste"): the category
#: named in the question is their hypothesis, not the item. Dropped when other words remain.
_HYPOTHESES = sorted(
    [
        "음식물쓰레기",
        "음식쓰레기",
        "음식물류",
        "음식물",
        "음쓰",
        "일반쓰레기",
        "종량제봉투",
        "종량제",
        "일반",
        "재활용품",
        "종이류",
        "종이로",
        "플라스틱으로",
        "비닐로",
        "캔으로",
        "유리로",
        "고철로",
        "food",
        "compost",
        "compostable",
        "general",
        "paper?",
        "plastic?",
    ],
    key=len,
    reverse=True,
)
#: Sentence endings glued to the last word ("쓰레기야", "음식물인가요").
_ENDINGS = (
    "이면요",
    "인가요",
    "인가",
    "이에요",
    "예요",
    "이야",
    "면요",
    "이면",
    "야",
    "죠",
    "냐",
    "니",
    "나요",
    "지",
)

#: Korean particles that trail a noun in a question ("뼈는", "박스를"); stripped from a token's
#: end when what remains is still at least two syllables.
_JOSA = (
    "에서",
    "으로",
    "이랑",
    "은",
    "는",
    "이",
    "가",
    "을",
    "를",
    "에",
    "도",
    "로",
    "랑",
    "과",
    "와",
)


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def key(text: str) -> str:
    """Lower-case, space- and punctuation-free form used for exact and containment matching."""
    return "".join(tokens(text))


def tokens(text: str) -> list[str]:
    return [t for t in _NON_WORD.split(nfkc(text).lower().replace("_", " ")) if t]


#: Vowels Korean speakers write interchangeably (ㅐ/ㅔ: "패트병"), folded together for matching.
_FOLD = {"ㅒ": "ㅖ", "ㅐ": "ㅔ", "ㅙ": "ㅞ", "ㅚ": "ㅞ"}


def jamo(text: str) -> str:
    """Decompose Hangul syllables into compatibility jamo; other characters pass through.

    Vowels that sound alike are folded (see ``_FOLD``), so the result is for matching only.
    """
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if _HANGUL_BASE <= code <= _HANGUL_LAST:
            index = code - _HANGUL_BASE
            out.append(_CHO[index // 588])
            vowel = _JUNG[(index % 588) // 28]
            out.append(_FOLD.get(vowel, vowel))
            out.append(_JONG[index % 28])
        else:
            out.append(ch)
    return "".join(out)


def ngrams(text: str, n: int = 3) -> set[str]:
    """Character n-grams of ``text`` with boundary marks, so short words still have some."""
    padded = f"^{text}$"
    if len(padded) <= n:
        return {padded}
    return {padded[i : i + n] for i in range(len(padded) - n + 1)}


def strip_josa(token: str) -> str:
    for josa in _JOSA:
        if token.endswith(josa) and len(token) - len(josa) >= 2:
            return token[: -len(josa)]
    return token


def content_tokens(text: str, known: Container[str] = frozenset()) -> list[str]:
    """The query's words minus question framing and guessed categories, particles removed.

    A word in ``known`` (item names) is kept whole: "아보카도" must not lose its "도".
    """
    words = _content_tokens(text, known)
    kept = [w for w in words if w not in _HYPOTHESES]
    return kept or words


def _content_tokens(text: str, known: Container[str]) -> list[str]:
    out: list[str] = []
    for token in tokens(text):
        if token in known:
            out.append(token)
            continue
        if token in _FILLERS_EN:
            continue
        if token in _FILLERS_KO:
            continue
        if token in _HYPOTHESES:
            out.append(token)
            continue
        stripped = strip_josa(token)
        if stripped == token:
            # A one-syllable item ("랩은", "옷도"): its particle comes off only when what is
            # left is a name we know, so "병이" becomes 병 but "요" stays a filler.
            for josa in _JOSA:
                if token.endswith(josa) and token[: -len(josa)] in known:
                    stripped = token[: -len(josa)]
                    break
        for ending in _ENDINGS:
            if stripped.endswith(ending) and len(stripped) - len(ending) >= 2:
                stripped = stripped[: -len(ending)]
                break
        for hypothesis in _HYPOTHESES:
            # "음식물쓰레기인가요" → the guess alone; "닭뼈음쓰" → keep the item part.
            if stripped.startswith(hypothesis) and stripped != hypothesis:
                rest = stripped[len(hypothesis) :]
                if rest in _FILLERS_KO or rest in _HYPOTHESES:
                    stripped = hypothesis
                    break
        for filler in _FILLERS_KO:
            # "버려요", "버리나요" glued to the noun: "뼈버려요" → "뼈".
            if len(filler) >= 2 and stripped.endswith(filler) and len(stripped) > len(filler):
                stripped = stripped[: -len(filler)]
                break
        if stripped and stripped not in _FILLERS_KO:
            out.append(stripped)
    return out
