"""District rules in the coaching: a location's 시군구, and that district's own rule said by name.

Scan coaching and chat answers both end with the district's rule for the streams they send the
item to, headed by the district's name ("제주 제주시 기준: …", "Jeju City rule: …"), and report
the district in their done event. Where the district has no rule of its own for the stream, or
the location lies in no district (at sea, abroad), the national rule stands alone and nothing
is said about a district: the done event's ``district`` tells the client which case it was.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from protocol.messages import District, GeoPoint, Locale
from protocol.streams import Stream
from server.coach.grounding import Sentence
from server.coach.prompts import text
from server.knowledge.kb import KnowledgeBase
from server.knowledge.model import LocalRule
from server.regions.districts import DistrictIndex

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LocalGuidance:
    """What the district adds to an answer: sentences to say last, and the done event's field."""

    sentences: tuple[Sentence, ...] = ()
    district: District | None = None


NONE = LocalGuidance()


class DistrictRules:
    """Places a location in its district and picks that district's rules from the knowledge
    base. Without an index (a stand-in coach, a test) every answer is national."""

    def __init__(self, kb: KnowledgeBase, index: DistrictIndex | None) -> None:
        self.kb = kb
        self.index = index

    def guidance(
        self, location: GeoPoint | None, streams: Iterable[Stream], locale: Locale
    ) -> LocalGuidance:
        """The district's own rules for ``streams`` (in order, each said once)."""
        if location is None or self.index is None:
            return NONE
        placed = self.index.lookup(location.lat, location.lon)
        if placed is None:
            return NONE
        rules: list[LocalRule] = []
        for stream in streams:
            rule = self.kb.local_rule(placed.code, stream)
            if rule is not None and rule not in rules:
                rules.append(rule)
        district = District(code=placed.code, name=placed.full_name, local_rule=bool(rules))
        if not rules:
            return LocalGuidance((), district)
        name = self.kb.district_names.get(placed.code)
        label = text(name, locale) if name is not None else placed.short_name
        return LocalGuidance(tuple(_said(label, rule, locale) for rule in rules), district)


def _said(label: str, rule: LocalRule, locale: Locale) -> Sentence:
    note = text(rule.note, locale)
    lead = f"{label} 기준:" if locale is Locale.KO else f"{label} rule:"
    return Sentence(f"{lead} {note}", (rule.id,))
