"""Korean particles that depend on the preceding word's final consonant (받침).

Guidance sentences splice item and bin names into templates; without this the Korean reads
like a machine wrote it ("병를", "캔은로").
"""

from __future__ import annotations

_FIRST, _LAST = 0xAC00, 0xD7A3
_RIEUL = 8  # index of ㄹ among the final consonants


def _final_consonant(word: str) -> int | None:
    """Index of the last syllable's final consonant (0 = none), None when not Hangul."""
    stripped = word.rstrip(" )]}\"'")
    if not stripped:
        return None
    code = ord(stripped[-1])
    if not _FIRST <= code <= _LAST:
        return None
    return (code - _FIRST) % 28


def particle(word: str, with_final: str, without_final: str) -> str:
    """``word`` followed by the right form of a two-form particle (은/는, 이/가, 을/를, 과/와).

    Words that do not end in Hangul (English names, digits) take the form written for a
    syllable without a final consonant, which is how most readers pronounce a trailing Latin
    letter's Korean name only roughly; the ambiguity is accepted over guessing.
    """
    final = _final_consonant(word)
    return word + (with_final if final else without_final)


def euro(word: str) -> str:
    """``word`` + 으로/로: ㄹ-final and vowel-final words take 로."""
    final = _final_consonant(word)
    return word + ("으로" if final and final != _RIEUL else "로")
