"""What the pipeline asks of each stage, and the values that cross between them.

A leaf module: it imports only ``protocol``. The domains implement these protocols
(``server.vision``, ``server.coach``, ``server.locations``), the pipeline (``server.pipeline``)
calls them, and the one wiring module (``server.container``) puts them together; so neither the
domains nor the pipeline import each other. A stage neither knows nor cares whether the embedded
runner or a Celery worker calls it: it gets a :class:`ScanInput` and returns (or, for coaching
and chat, streams) protocol models.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from protocol.messages import (
    BinsSuggested,
    ClarifyChoice,
    Classification,
    District,
    GeoPoint,
    Locale,
)


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
    #: The district of the scan's location, and whether its own rule was applied.
    district: District | None = None


@dataclass(frozen=True, slots=True)
class Question:
    """What to ask the person when vision is unsure (``scan.clarify``)."""

    text: str
    choices: list[ClarifyChoice]


class ChatOutcome(StrEnum):
    """What kind of answer a chat reply was; lets a client style refusals differently."""

    ANSWERED = "answered"
    NOT_KNOWN = "not_known"
    OFF_TOPIC = "off_topic"
    REFUSED = "refused"
    INVALID = "invalid"


@dataclass(slots=True)
class ChatResult:
    """What the chat stage reports when its answer ends."""

    text: str
    item_ids: list[int] = field(default_factory=list)
    rule_ids: list[str] = field(default_factory=list)
    backend: str = "embedded"
    fallback_reason: str | None = None
    outcome: ChatOutcome = ChatOutcome.ANSWERED
    #: The district of the question's location, and whether its own rule was applied.
    district: District | None = None


@dataclass(frozen=True, slots=True)
class ChatQuestion:
    """One follow-up question, with what the chat stage may know about its context."""

    request_id: str
    session_id: str
    user_id: str
    locale: Locale
    text: str
    scan_id: str | None = None
    #: The asker's own scan the question refers to, if any.
    scan_context: Classification | None = None
    #: Where the person is (the message's location, else its scan's), for district rules.
    location: GeoPoint | None = None


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
    def question(self, c: Classification, locale: Locale) -> Question | None:
        """What to ask about ``c``, or ``None`` when vision is sure enough."""
        ...

    def resolve(self, c: Classification, question: Question, label: str) -> Classification | None:
        """The classification the person confirmed, or ``None`` if ``label`` was not offered."""
        ...


class ChatStage(Protocol):
    def converse(self, question: ChatQuestion) -> AsyncIterator[str | ChatResult]:
        """Yield text deltas, then exactly one :class:`ChatResult`; the exchange is
        remembered for the conversation once it completes."""
        ...


@dataclass(frozen=True, slots=True)
class Stages:
    vision: VisionStage
    coach: CoachStage
    locations: LocationStage
    #: Asks the person when vision is unsure; ``None`` never asks.
    clarifier: Clarifier | None = None
    #: Answers follow-up questions; ``None`` where chat is not offered.
    chat: ChatStage | None = None
