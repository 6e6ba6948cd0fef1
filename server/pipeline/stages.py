"""Interfaces of the three scan stages.

A stage is plain domain code. It neither knows nor cares whether the embedded runner or a
Celery worker calls it; it gets a :class:`ScanInput` and returns (or, for coaching, streams)
protocol models. Implementations live in their own domain packages (``server.vision``,
``server.coach``, ``server.locations``) and are put together by ``server.pipeline.factory``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from protocol.messages import BinsSuggested, Classification, GeoPoint, Locale

if TYPE_CHECKING:
    from server.coach.chat import ChatService
    from server.pipeline.clarify import Question


@dataclass(frozen=True, slots=True)
class ScanInput:
    """Everything a stage may read about the scan it works on."""

    scan_id: str
    request_id: str
    session_id: str
    user_id: str
    locale: Locale
    image: bytes
    content_type: str
    location: GeoPoint | None = None


@dataclass(slots=True)
class CoachingResult:
    """What the coach reports when its stream ends."""

    text: str
    rule_ids: list[str] = field(default_factory=list)
    backend: str = "unknown"
    fallback_reason: str | None = None


class VisionStage(Protocol):
    async def classify(self, scan: ScanInput) -> Classification: ...


class CoachStage(Protocol):
    def coach(
        self, scan: ScanInput, classification: Classification
    ) -> AsyncIterator[str | CoachingResult]:
        """Yield text deltas, then exactly one :class:`CoachingResult` as the last item."""
        ...


class LocationStage(Protocol):
    async def suggest(self, scan: ScanInput, classification: Classification) -> BinsSuggested:
        """Return the event with ``scan_id`` and ``request_id`` of ``scan`` filled in."""
        ...


class Clarifier(Protocol):
    def question(self, c: Classification, locale: Locale) -> Question | None: ...


@dataclass(frozen=True, slots=True)
class Stages:
    vision: VisionStage
    coach: CoachStage
    locations: LocationStage
    #: Asks the person when vision is unsure; ``None`` never asks.
    clarifier: Clarifier | None = None
    #: Answers follow-up questions; ``None`` where chat is not offered.
    chat: ChatService | None = None
