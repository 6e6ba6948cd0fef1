"""Checks on a chat question before any backend sees it, and on an LLM's answer before the
person does.

Deterministic on purpose: prompt-injection and off-topic handling must not depend on the model
we are trying to protect, and empty or oversized input should never cost an upstream call.
An LLM answer is held to the same invariant as the embedded one (:mod:`server.coach.invariant`):
:func:`check_answer` says which bins a sentence of it names that the item's rules contradict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach.invariant import contradicts
from server.language import detect_language

#: Longest question accepted. A real follow-up is a sentence or two; anything far longer is a
#: paste, and would crowd the rules out of a small model's context.
MAX_QUESTION_CHARS = 500


class Verdict(StrEnum):
    OK = "ok"
    EMPTY = "empty"
    TOO_LONG = "too_long"
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    INJECTION = "injection"


@dataclass(frozen=True, slots=True)
class Checked:
    verdict: Verdict
    question: str
    #: The language to answer in: the question's own when we can tell, else the session's.
    locale: Locale


_INJECTION = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\b(ignore|disregard|forget|override|bypass)\b.{0,40}\b(rules?|instructions?|prompts?|guidelines?|polic(y|ies)|directions?)\b",
        r"\bsystem\s+prompt\b",
        r"\b(reveal|show|print|repeat)\b.{0,30}\b(prompt|instructions?)\b",
        r"\byou\s+are\s+now\b",
        r"\bfrom\s+now\s+on\b",
        r"\bpretend\s+(to\s+be|you)\b",
        r"\b(act|behave)\s+as\b",
        r"\b(jailbreak|developer\s+mode|dan\s+mode)\b",
        r"\bnew\s+rule\b",
        r"(규칙|지시|지침|명령|프롬프트|설정|룰).{0,10}(무시|잊어|잊고|바꿔|바꾸|변경|어겨)",
        # "무시하고" alone is also how people say "never mind the label": only "ignore what you
        # were told / everything above" is an attempt on the rules.
        r"(위|앞|이전|모든|전부|다)\s*(내용|말|것)?\s*(을|를)?\s*무시하고",
        r"시스템\s*프롬프트",
        r"(지금부터|이제부터)\s*(너는|넌|당신은)",
        r"탈옥",
        r"역할\s*(극|놀이)",
    )
]


def looks_like_injection(question: str) -> bool:
    return any(p.search(question) for p in _INJECTION)


def check(question: str, session_locale: Locale) -> Checked:
    cleaned = " ".join(question.split())
    if not cleaned:
        return Checked(Verdict.EMPTY, cleaned, session_locale)
    if len(cleaned) > MAX_QUESTION_CHARS:
        return Checked(Verdict.TOO_LONG, cleaned, detect_language(cleaned[:200]) or session_locale)
    language = detect_language(cleaned)
    if language is None:
        return Checked(Verdict.UNSUPPORTED_LANGUAGE, cleaned, session_locale)
    if looks_like_injection(cleaned):
        return Checked(Verdict.INJECTION, cleaned, language)
    return Checked(Verdict.OK, cleaned, language)


def check_answer(sentence: str, allowed: frozenset[Stream]) -> list[Stream]:
    """The bins one sentence of an LLM answer sends the reader to that the item's rules
    contradict (empty when the sentence may be sent)."""
    return contradicts(sentence, allowed)
