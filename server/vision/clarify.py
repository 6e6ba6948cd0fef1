"""When the classifier is unsure, ask one short question instead of guessing.

:func:`clarification_for` turns a :class:`Classification` into a :class:`Clarification`
(a question and 2–5 choices, each naming the stream it leads to) when the confidence is below
``CLARIFY_BELOW``, and returns ``None`` when the answer is good enough to act on. The pipeline
sends the question as a protocol event; the user's pick replaces the stream.

``CLARIFY_BELOW`` is 0.7, checked on the tune photos of the training script's split (never on
the holdout; figures in ``docs/benchmarks.md``): there about one scan in seven is asked and the
embedded classifier's stream is right for 98 % of the others (head with foil and film
classes, scored on the photos' own labels: 0.6 would ask one in fourteen at 97.4 %, 0.8 one
in five at 98.1 %; the cut-off was kept, not re-chosen).
The OpenAI backend reports its own confidence and goes through the same cut-off.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import messages as m
from protocol.messages import Classification, Locale
from protocol.streams import OFFICIAL_PATH, Stream
from server.contracts import Question
from server.vision.taxonomy import HEAD_KINDS, IMAGENET_GROUPS, STREAM_NAMES

CLARIFY_BELOW = 0.7
MAX_CHOICES = 5
#: Alternatives at least this likely come before the kind's look-alikes; at most
#: ``STRONG_FIRST`` of them, so that the first look-alike always has a place.
STRONG_ALTERNATIVE = 0.2
STRONG_FIRST = 2


@dataclass(frozen=True, slots=True)
class ClarifyChoice:
    label: str
    stream: Stream
    text_ko: str
    text_en: str

    def text(self, locale: Locale) -> str:
        return self.text_ko if locale is Locale.KO else self.text_en


@dataclass(frozen=True, slots=True)
class Clarification:
    question: str
    """In the requested locale."""
    choices: tuple[ClarifyChoice, ...]
    locale: Locale


#: The question asked, per the stream the classifier leans to. Short: it is read on a phone,
#: over a camera preview.
_QUESTIONS: dict[Stream, tuple[str, str]] = {
    Stream.CLEAR_PET: ("투명한 페트병인가요, 색이 있나요?", "Is the bottle clear or coloured?"),
    Stream.PLASTIC: ("어떤 재질에 가까운가요?", "Which is it closest to?"),
    Stream.PAPER: ("종이인가요, 종이팩인가요?", "Is it paper or a paper carton?"),
}
_DEFAULT_QUESTION = ("이것은 무엇에 가까운가요?", "What is this closest to?")


def _known_labels() -> dict[Stream, str]:
    """A representative label per stream, for choices that came from a kind's ``also``."""
    labels: dict[Stream, str] = {}
    for kind in HEAD_KINDS.values():
        labels.setdefault(kind.stream, kind.label)
    for group in IMAGENET_GROUPS:
        kinds = [group.override] if group.override else list(group.refine.values())
        for kind in [*kinds, *group.doubt.values()]:
            if kind is not None:
                labels.setdefault(kind.stream, kind.label)
    return labels


def _confusions() -> dict[str, tuple[Stream, ...]]:
    """Label → every stream an item of that label is commonly mistaken for (or split into,
    as clear and coloured PET bottles), merged over the kinds that share the label."""
    merged: dict[str, list[Stream]] = {}
    kinds = list(HEAD_KINDS.values())
    for group in IMAGENET_GROUPS:
        kinds.extend(
            k
            for k in [group.override, *group.refine.values(), *group.doubt.values()]
            if k is not None
        )
    for kind in kinds:
        streams = merged.setdefault(kind.label, [])
        for stream in (kind.stream, *kind.also):
            if stream not in streams:
                streams.append(stream)
    return {label: tuple(streams) for label, streams in merged.items()}


_LABELS = _known_labels()
_ALSO = _confusions()


def clarification_for(
    c: Classification, locale: Locale, *, threshold: float = CLARIFY_BELOW
) -> Clarification | None:
    """A question with 2–5 choices when ``c`` is too unsure to act on, else ``None``.

    Choices, in order: what the classifier thinks; up to ``STRONG_FIRST`` alternatives it
    holds at least ``STRONG_ALTERNATIVE`` likely; the commonest look-alike of the kind (a
    drinking glass for a glass bottle, foil for metal, film for general waste), always offered
    since that is where a wrong answer does most harm; then the other alternatives and
    look-alikes. A final "something else" choice lets the user escape a wrong shortlist.
    """
    if c.confidence >= threshold:
        return None
    ranked = sorted(c.alternatives, key=lambda a: -a.confidence)
    strong = [a for a in ranked if a.confidence >= STRONG_ALTERNATIVE][:STRONG_FIRST]
    also = [
        (_LABELS.get(stream, stream.value), stream)
        for stream in _ALSO.get(c.label, ())
        if stream is not c.stream
    ]
    picks: list[tuple[str, Stream]] = [(c.label, c.stream)]
    picks.extend((a.label, a.stream) for a in strong)
    picks.extend(also[:1])
    picks.extend((a.label, a.stream) for a in ranked if a not in strong)
    picks.extend(also[1:])
    choices: list[ClarifyChoice] = []
    seen: set[Stream] = set()
    labels: set[str] = set()
    for label, stream in picks:
        if stream in seen or stream is Stream.OTHER:
            continue
        if label in labels:
            # The answer names a choice by label: two choices may never share one (a PET
            # bottle offered as clear or coloured would otherwise be "pet_bottle" twice).
            label = stream.value
        seen.add(stream)
        labels.add(label)
        ko, en = STREAM_NAMES[stream]
        choices.append(ClarifyChoice(label=label, stream=stream, text_ko=ko, text_en=en))
        if len(choices) == MAX_CHOICES - 1:
            break
    ko, en = STREAM_NAMES[Stream.OTHER]
    choices.append(ClarifyChoice(label="other", stream=Stream.OTHER, text_ko=ko, text_en=en))
    q_ko, q_en = _QUESTIONS.get(c.stream, _DEFAULT_QUESTION)
    return Clarification(
        question=q_ko if locale is Locale.KO else q_en, choices=tuple(choices), locale=locale
    )


class VisionClarifier:
    """Implements :class:`server.contracts.Clarifier`: :func:`clarification_for` in protocol
    terms, and the person's pick turned back into a classification."""

    def question(self, c: Classification, locale: Locale) -> Question | None:
        clarification = clarification_for(c, locale)
        if clarification is None:
            return None
        return Question(
            text=clarification.question,
            choices=[
                m.ClarifyChoice(label=ch.label, stream=ch.stream, text=ch.text(locale))
                for ch in clarification.choices
            ],
        )

    def resolve(self, c: Classification, question: Question, label: str) -> Classification | None:
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
                "category": m.OfficialCategory(major=major, middle=middle),
                "confidence": alternative.confidence if alternative else c.confidence,
                "confirmed": True,
                # What the model judged about material and shape described its own guess.
                "material": None,
                "shape": None,
            }
        )


def build() -> VisionClarifier:
    return VisionClarifier()
