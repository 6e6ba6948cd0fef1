"""Which language a piece of text is written in: Korean, English, another one, or none.

The one detector behind both the chat guard (answer in the question's language, refuse others)
and item search (refuse a query it cannot match, tag English item names). A leaf module, so the
coach and search can share it without importing each other.

A script count is enough: the product only speaks Korean and English, and the two do not share a
script. Digits and punctuation vote for nothing.
"""

from __future__ import annotations

from enum import StrEnum

from protocol.messages import Locale


class Script(StrEnum):
    KOREAN = "ko"
    LATIN = "en"
    #: Letters, but of a language we do not support (Chinese, Japanese, Russian, Thai...).
    OTHER = "other"
    #: No letters at all ("123 ?!").
    NONE = "none"

    @property
    def locale(self) -> Locale | None:
        """The supported language of this script, ``None`` for the other two."""
        if self is Script.KOREAN:
            return Locale.KO
        if self is Script.LATIN:
            return Locale.EN
        return None


def _is_hangul(ch: str) -> bool:
    # Syllables, conjoining jamo and compatibility jamo (what a half-typed "ㅋㅋ" is made of).
    return "\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" or "\u3130" <= ch <= "\u318f"


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def detect_script(text: str) -> Script:
    """The script ``text`` is written in, by counting its letters.

    Korean when Hangul letters are at least as many as letters of unsupported scripts; Han
    characters are tolerated inside Korean text (mixed script is common in product names), but
    Han without any Hangul is Chinese, which we do not support. Latin when ASCII letters are at
    least twice the unsupported ones, so a word of another language with a few Latin letters in
    it is not taken for English.
    """
    hangul = latin = other = 0
    han = False
    for ch in text:
        if not ch.isalpha():
            continue
        if _is_hangul(ch):
            hangul += 1
        elif ch.isascii():
            latin += 1
        else:
            other += 1
            han = han or _is_han(ch)
    if not (hangul or latin or other):
        return Script.NONE
    if hangul and hangul >= other:
        return Script.KOREAN
    if han and not hangul:
        return Script.OTHER
    if latin and latin >= other * 2:
        return Script.LATIN
    return Script.OTHER


def detect_language(text: str) -> Locale | None:
    """The supported language ``text`` is written in, or ``None`` when it is neither."""
    return detect_script(text).locale
