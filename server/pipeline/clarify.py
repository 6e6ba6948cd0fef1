"""The clarify step: when vision is unsure, ask the person instead of guessing.

The decision (threshold, which choices) belongs to the vision domain; this module turns it into
protocol terms and turns the person's pick back into a classification.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.messages import ClarifyChoice, Classification, Locale, OfficialCategory
from protocol.streams import OFFICIAL_PATH


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    choices: list[ClarifyChoice]


class VisionClarifier:
    """Adapter over ``server.vision.clarify``."""

    def question(self, c: Classification, locale: Locale) -> Question | None:
        from server.vision.clarify import clarification_for

        clarification = clarification_for(c, locale)
        if clarification is None:
            return None
        return Question(
            text=clarification.question,
            choices=[
                ClarifyChoice(label=ch.label, stream=ch.stream, text=ch.text(locale))
                for ch in clarification.choices
            ],
        )


def resolve(c: Classification, question: Question, label: str) -> Classification | None:
    """The classification the person confirmed, or ``None`` if ``label`` was not offered."""
    from server.vision.taxonomy import STREAM_NAMES

    choice = next((ch for ch in question.choices if ch.label == label), None)
    if choice is None:
        return None
    if choice.label == c.label:
        return c.model_copy(update={"confirmed": True})
    major, middle = OFFICIAL_PATH[choice.stream]
    name_ko, name_en = STREAM_NAMES[choice.stream]
    alternative = next((a for a in c.alternatives if a.label == choice.label), None)
    return c.model_copy(
        update={
            "label": choice.label,
            "stream": choice.stream,
            "name_ko": name_ko,
            "name_en": name_en,
            "category": OfficialCategory(major=major, middle=middle),
            "confidence": alternative.confidence if alternative else c.confidence,
            "confirmed": True,
            # What the model judged about material and shape described its own guess.
            "material": None,
            "shape": None,
        }
    )
