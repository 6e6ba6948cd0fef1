"""The embedded coach: grounded guidance streamed from the knowledge base, no model needed.

It is the default backend and the fallback of the LLM one, so it must never fail on a valid
classification and must start streaming at once: the first sentence (what the item looks like)
needs nothing but the classification, and the rules are in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from protocol.messages import Classification, District, GeoPoint, Locale
from protocol.streams import Stream
from server.coach import grounding as g
from server.coach import prompts
from server.coach.grounding import Grounding, Sentence
from server.coach.invariant import enforce
from server.coach.local import DistrictRules, LocalGuidance
from server.coach.planner import allowed_for
from server.coach.relay import Answer, stream_answer
from server.contracts import CoachingResult, ScanInput
from server.knowledge.kb import KnowledgeBase, get_knowledge_base
from server.regions.districts import DistrictIndex, get_district_index


class EmbeddedCoach:
    """Implements :class:`server.contracts.CoachStage`."""

    def __init__(
        self, kb: KnowledgeBase | None = None, districts: DistrictIndex | None = None
    ) -> None:
        self._kb = kb
        self._districts = districts
        self._local: DistrictRules | None = None

    @property
    def kb(self) -> KnowledgeBase:
        # Loaded on first use so building the coach (e.g. in the CLI) costs nothing.
        if self._kb is None:
            self._kb = get_knowledge_base()
        return self._kb

    def local_guidance(
        self, classification: Classification, locale: Locale, location: GeoPoint | None
    ) -> LocalGuidance:
        """The rule of the location's district for the stream the coaching sends the item to."""
        if self._local is None:
            self._local = DistrictRules(self.kb, self._districts or get_district_index())
        main = g.ground_classification(self.kb, classification).main
        stream = main.stream if main is not None else classification.stream
        return self._local.guidance(location, [stream], locale)

    def compose(self, classification: Classification, locale: Locale) -> list[Sentence]:
        """The coaching as sentences, in reading order. Pure: no I/O, no clock."""
        kb = self.kb
        grounding = g.ground_classification(kb, classification)
        contamination = classification.contamination.value if classification.contamination else None
        sentences = [g.identification(classification, locale)]
        # A clarify answer the person confirmed is certain: no runner-up, no "if it is
        # actually…" (the hedge was the question they just answered).
        if classification.confidence < g.LOW_CONFIDENCE and not classification.confirmed:
            alternatives = [
                a for a in classification.alternatives if a.stream is not classification.stream
            ]
            if alternatives:
                sentences.append(g.alternative(kb, alternatives[0], locale))
        sentences.extend(
            g.steps(grounding, locale, rinse_first=contamination in ("light", "heavy"))
        )
        parts = g.unmentioned_parts(grounding, [p.value for p in classification.parts], locale)
        is_mixed = classification.mixed is not None and classification.mixed.value == "yes"
        if parts or (is_mixed and not g.separates(grounding)):
            part = g.part_sentence(parts, locale)
            if part is not None:
                sentences.append(part)
        heavy = contamination == "heavy"
        if heavy:
            sentences.append(g.heavy_soil(kb, grounding, locale))
        main = grounding.main
        if main is not None and not g.names_drop_off(grounding):
            # A step that already ends "... put it in the clear-PET bin" says it; unless the
            # item was dirty, where the bin is the alternative to the general-waste bag.
            label = prompts.text(main.bin, locale).lower()
            said = any(label in s.text.lower() for s in sentences)
            if heavy or not said:
                sentences.append(g.destination(main, locale, once_clean=heavy))
        why = g.reason(grounding, locale)
        if why is not None:
            sentences.append(why)
        return enforce(sentences, scan_allowed(grounding, classification))

    async def coach(
        self, scan: ScanInput, classification: Classification
    ) -> AsyncIterator[str | CoachingResult]:
        async for event in self.stream(classification, scan.locale, scan.location):
            yield event

    async def stream(
        self, classification: Classification, locale: Locale, location: GeoPoint | None = None
    ) -> AsyncIterator[str | CoachingResult]:
        local = self.local_guidance(classification, locale, location)
        answer = stream_answer(
            locale, lambda: self.compose(classification, locale), tail=local.sentences
        )
        async with aclosing(answer) as events:
            async for event in events:
                yield coaching_result(event, local.district) if isinstance(event, Answer) else event


def scan_allowed(grounding: Grounding, classification: Classification) -> frozenset[Stream]:
    """The bins a scan's coaching may name: the item's own (its paths and its rules), the
    general-waste bag when the photo shows heavy dirt, and, while the scan is uncertain and
    unconfirmed, the runner-up's the hedge names."""
    allowed = set(allowed_for(grounding))
    contamination = classification.contamination
    if contamination is not None and contamination.value == "heavy":
        # What cannot be cleaned is general waste, whatever it is made of (g.heavy_soil).
        allowed.add(Stream.GENERAL)
    if classification.confidence < g.LOW_CONFIDENCE and not classification.confirmed:
        allowed.update(alt.stream for alt in classification.alternatives)
    return frozenset(allowed)


def coaching_result(answer: Answer, district: District | None = None) -> CoachingResult:
    """The scan coaching's done event for a streamed answer."""
    return CoachingResult(
        text=answer.text,
        rule_ids=answer.rule_ids,
        backend=answer.backend,
        fallback_reason=answer.fallback_reason,
        district=district,
    )
