"""The coaching stage, put together from the settings (``build``, called by
``server.container``): the LLM coach when an API key is configured, else the embedded composer,
which the LLM coach also falls back to. Both say the rule of the scan's district
(``districts``: the shipped boundaries when not given)."""

from __future__ import annotations

from server.coach.composer import EmbeddedCoach
from server.coach.llm import LLMCoach
from server.contracts import CoachStage
from server.knowledge.kb import KnowledgeBase
from server.regions.districts import DistrictIndex
from server.settings import Settings


def build(
    settings: Settings, kb: KnowledgeBase, districts: DistrictIndex | None = None
) -> CoachStage:
    embedded = EmbeddedCoach(kb, districts)
    if settings.openai.api_key is None:
        return embedded
    return LLMCoach(settings.openai, kb, fallback=embedded)
