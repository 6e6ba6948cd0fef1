"""Puts the real stages together, or the ones named by ``WASTECOACH_STAGES_FACTORY``."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable

from server.db import Database
from server.pipeline.stages import Stages
from server.settings import Settings

StagesFactory = Callable[[Settings, Database], Awaitable[Stages]]


def _load(path: str) -> StagesFactory:
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"stages_factory must look like 'module:callable', not {path!r}")
    factory: StagesFactory = getattr(importlib.import_module(module_name), attr)
    return factory


def warm_up() -> None:
    """Load the knowledge base and the item search index (blocking, a few hundred ms)."""
    from server.knowledge.kb import get_knowledge_base
    from server.search.service import get_item_search

    get_knowledge_base()
    get_item_search()


async def build_stages(settings: Settings, db: Database) -> Stages:
    if settings.stages_factory:
        return await _load(settings.stages_factory)(settings, db)
    return await real_stages(settings, db)


async def real_stages(settings: Settings, db: Database) -> Stages:
    from server.coach.chat import ChatService
    from server.coach.llm import build_coach
    from server.locations.stage import LocationsStage
    from server.pipeline.clarify import VisionClarifier
    from server.vision.factory import build_vision

    return Stages(
        vision=build_vision(settings),
        coach=build_coach(settings),
        locations=LocationsStage(db),
        clarifier=VisionClarifier(),
        chat=ChatService(settings=settings.openai),
    )
