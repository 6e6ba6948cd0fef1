"""Stand-in scan stages for the pipeline's own tests and for the orchestration benchmark.

They are not the product's stages: they answer instantly (or as slowly as the test asks), so
that tests and benchmarks measure the orchestration only. The image bytes steer them:

* ``FAIL...``  the vision stage raises;
* ``SLOW...``  the coach streams 20 deltas 50 ms apart (time to cancel or drop a connection);
* ``MANY...``  the coach streams 1500 deltas of 1 KiB at once (a flood for slow-client tests);
* ``UNSURE...`` the vision stage is unsure (confidence 0.4), so the scan asks the person;
  ``UNSURESLOW...`` also streams slowly after the answer (a worker can die mid-coaching);
* anything else: 3 deltas at once.

Follow-up chat uses the product's real chat service (embedded backend): it is the subject of
its own tests, and needs no stand-in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from protocol.messages import (
    Alternative,
    BinsSuggested,
    ClarifyChoice,
    Classification,
    Locale,
    OfficialCategory,
)
from protocol.streams import Stream
from server.contracts import CoachingResult, Question, ScanInput, Stages
from server.db import Database
from server.errors import StageFailed
from server.settings import Settings


class InstantVision:
    async def classify(self, scan: ScanInput) -> Classification:
        if scan.image.startswith(b"FAIL"):
            raise StageFailed("test vision stage was told to fail")
        if scan.image.startswith(b"UNSURE"):
            return Classification(
                label="glass_bottle",
                name_ko="유리병",
                name_en="glass bottle",
                stream=Stream.GLASS,
                category=OfficialCategory(major="재활용폐기물", middle="유리병"),
                confidence=0.4,
                alternatives=[Alternative(label="pet_bottle", stream=Stream.CLEAR_PET,
                                          confidence=0.35)],
                model="test-stage",
            )
        return Classification(
            label="pet_bottle",
            name_ko="페트병",
            name_en="PET bottle",
            stream=Stream.CLEAR_PET,
            category=OfficialCategory(major="재활용폐기물", middle="무색페트병"),
            confidence=0.97,
            model="test-stage",
        )


class InstantCoach:
    async def coach(
        self, scan: ScanInput, classification: Classification
    ) -> AsyncIterator[str | CoachingResult]:
        if scan.image.startswith(b"REALCOACH"):
            # The product's own coach, for tests of what it says (district rules) in both modes.
            from server.coach.composer import EmbeddedCoach

            async for event in EmbeddedCoach().coach(scan, classification):
                yield event
            return
        if scan.image.startswith((b"SLOW", b"UNSURESLOW")):
            count, delay = 20, 0.05
        elif scan.image.startswith(b"MANY"):
            count, delay = 1500, 0.0
        else:
            count, delay = 3, 0.0
        parts = []
        for i in range(count):
            if delay:
                await asyncio.sleep(delay)
            text = f"step {i}. " + ("x" * 1024 if count > 100 else "")
            parts.append(text)
            yield text
        yield CoachingResult(text="".join(parts), rule_ids=["test.rule"], backend="test-stage")


class InstantLocations:
    async def suggest(self, scan: ScanInput, classification: Classification) -> BinsSuggested:
        return BinsSuggested(
            request_id=scan.request_id,
            scan_id=scan.scan_id,
            stream=classification.stream,
            places=[],
            location_used=scan.location is not None,
            note="test stage",
        )


class TestClarifier:
    def question(self, c: Classification, locale: Locale) -> Question | None:
        if c.confidence >= 0.5:
            return None
        choices = [ClarifyChoice(label=c.label, stream=c.stream, text=c.name_en)]
        choices += [ClarifyChoice(label=a.label, stream=a.stream, text=a.label)
                    for a in c.alternatives]
        return Question(text="Glass or PET?", choices=choices)

    def resolve(self, c: Classification, question: Question, label: str) -> Classification | None:
        from server.vision.clarify import VisionClarifier

        return VisionClarifier().resolve(c, question, label)


async def build(settings: Settings, db: Database) -> Stages:
    from server.coach.chat import ChatService
    from server.coach.chat_stage import ChatStage

    return Stages(
        vision=InstantVision(),
        coach=InstantCoach(),
        locations=InstantLocations(),
        clarifier=TestClarifier(),
        chat=ChatStage(ChatService(settings=settings.openai), db),
    )


class BatteryVision:
    """Sees a battery in every photo: ImageNet has no battery class, so the embedded
    classifier cannot produce one; this lets the real locations stage be tested in a scan."""

    async def classify(self, scan: ScanInput) -> Classification:
        return Classification(
            label="battery",
            name_ko="폐건전지",
            name_en="used battery",
            stream=Stream.BATTERY,
            category=OfficialCategory(major="재활용폐기물", middle="전지류"),
            confidence=0.95,
            model="test-stage",
        )


async def build_battery_with_real_locations(settings: Settings, db: Database) -> Stages:
    from server.coach.composer import EmbeddedCoach
    from server.locations.stage import LocationsStage

    return Stages(vision=BatteryVision(), coach=EmbeddedCoach(), locations=LocationsStage(db))


async def build_with_real_locations(settings: Settings, db: Database) -> Stages:
    """The instant stand-ins, but the product's locations stage on the database: a scan with a
    location queries PostgreSQL (for database fault tests)."""
    import dataclasses

    from server.locations.stage import LocationsStage

    return dataclasses.replace(await build(settings, db), locations=LocationsStage(db))
