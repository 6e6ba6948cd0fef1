"""The one wiring module: builds the process's long-lived parts from the settings.

Only this module imports every domain. It builds each thing once (the knowledge base, the item
search, the stages, the event log, the storage, the runner) and hands each domain only what
that domain uses. Every stage comes from its domain's ``build()`` (``server.vision.stage``,
``server.vision.clarify``, ``server.coach.stage``, ``server.coach.chat_stage``,
``server.locations.stage``).

Two entry points:

* :func:`build_pipeline`: what runs scans and questions (a Celery worker, or the embedded
  server's own runner). Nothing of the web app.
* :meth:`Container.build`: what the API process needs besides: tokens, accounts, the rate
  limiter, the pub/sub hub and the runner. Transport state (open connections, draining) is not
  here but with the transport, in ``server.ws.registry``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server.auth.service import Accounts
from server.auth.tokens import TokenService
from server.contracts import Stages
from server.db import Database
from server.events.base import EventLog
from server.events.memory import MemoryEventLog
from server.events.redis import RedisEventLog, RedisHub
from server.files import FILE_MODE, narrow_if_exists, private_dir
from server.knowledge.kb import KnowledgeBase, get_knowledge_base
from server.limits import RateLimiter, build_rate_limiter
from server.live.analyser import FrameAnalyser
from server.pipeline.run import PipelineDeps
from server.pipeline.runner import EmbeddedRunner, ScanRunner
from server.regions.districts import DistrictIndex, get_district_index
from server.search import ItemSearch, get_item_search
from server.settings import QueueType, Settings
from server.uploads.storage import LocalStorage, S3Storage, Storage
from server.uploads.sweep import sweep_periodically
from server.vision.embedded import EmbeddedClassifier

log = logging.getLogger(__name__)

#: ``WASTECOACH_STAGES_FACTORY`` names one of these (tests put stand-in stages in this way).
StagesFactory = Callable[[Settings, Database], Awaitable[Stages]]


@dataclass(frozen=True, slots=True)
class Knowledge:
    """The official item dictionary and its search index: read-only, shared by all."""

    kb: KnowledgeBase
    search: ItemSearch
    #: The 시군구 boundaries, for the district rules of scans and questions with a location.
    districts: DistrictIndex


def load_knowledge() -> Knowledge:
    """Load the knowledge base, the search index and the district boundaries (blocking, a few
    hundred ms): call it off the event loop. The shipped data is loaded once per process."""
    return Knowledge(get_knowledge_base(), get_item_search(), get_district_index())


async def build_stages(settings: Settings, db: Database, knowledge: Knowledge) -> Stages:
    if settings.stages_factory:
        return await _load_factory(settings.stages_factory)(settings, db)
    from server.coach import chat_stage
    from server.coach import stage as coach_stage
    from server.locations import stage as locations_stage
    from server.vision import clarify
    from server.vision import stage as vision_stage

    return Stages(
        vision=vision_stage.build(settings),
        coach=coach_stage.build(settings, knowledge.kb, knowledge.districts),
        locations=locations_stage.build(db),
        clarifier=clarify.build(),
        chat=chat_stage.build(settings, knowledge.kb, knowledge.search, db, knowledge.districts),
    )


def _load_factory(path: str) -> StagesFactory:
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"stages_factory must look like 'module:callable', not {path!r}")
    factory: StagesFactory = getattr(importlib.import_module(module_name), attr)
    return factory


async def close_stages(stages: Stages) -> None:
    """Close the HTTP pools of stages that hold one (the LLM backends)."""
    for stage in (stages.vision, stages.coach, stages.chat):
        aclose = getattr(stage, "aclose", None)
        if aclose is not None:
            await aclose()


def jwt_secret(settings: Settings) -> str:
    if settings.auth.jwt_secret is not None:
        return settings.auth.jwt_secret.get_secret_value()
    # Embedded only (distributed mode requires the setting): one random key per install,
    # kept so that tokens survive a restart.
    path = settings.data_dir / "jwt-secret"
    if not path.exists():
        private_dir(settings.data_dir)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    else:
        narrow_if_exists(path)  # an older install's key, or one copied in by hand
    return path.read_text().strip()


def build_storage(settings: Settings) -> Storage:
    if settings.embedded and settings.s3.endpoint_url is None:
        secret = jwt_secret(settings)
        key = hashlib.sha256(b"local-uploads\n" + secret.encode()).digest()
        return LocalStorage(
            settings.data_dir / "uploads", public_url=settings.public_base_url, secret=key
        )
    s3 = settings.s3
    return S3Storage(
        bucket=s3.bucket,
        region=s3.region,
        endpoint_url=s3.endpoint_url,
        access_key_id=s3.access_key_id.get_secret_value() if s3.access_key_id else None,
        secret_access_key=(
            s3.secret_access_key.get_secret_value() if s3.secret_access_key else None
        ),
    )


def build_event_log(settings: Settings, hub: RedisHub | None) -> EventLog:
    if settings.embedded:
        return MemoryEventLog(
            ttl_s=settings.session.replay_ttl_s, max_events=settings.session.replay_max_events
        )
    return RedisEventLog(
        settings.redis_url,
        ttl_s=settings.session.replay_ttl_s,
        max_events=settings.session.replay_max_events,
        hub=hub,
    )


async def build_pipeline(
    settings: Settings,
    *,
    event_log: EventLog | None = None,
    db: Database | None = None,
    knowledge: Knowledge | None = None,
) -> PipelineDeps:
    """What a worker process (or the embedded server) needs to run scans and questions."""
    db = db or Database(settings.sqlalchemy_url)
    if knowledge is None:
        knowledge = await asyncio.to_thread(load_knowledge)
    return PipelineDeps(
        log=event_log or build_event_log(settings, None),
        db=db,
        storage=build_storage(settings),
        stages=await build_stages(settings, db, knowledge),
        max_image_bytes=settings.uploads.max_bytes,
        clarify_timeout_s=settings.session.clarify_timeout_s,
    )


async def close_pipeline(deps: PipelineDeps) -> None:
    await deps.log.close()
    await close_stages(deps.stages)
    await deps.db.dispose()


@dataclass
class Container:
    """The API process's long-lived parts."""

    settings: Settings
    db: Database
    log: EventLog
    hub: RedisHub | None
    runner: ScanRunner
    storage: Storage
    tokens: TokenService
    limiter: RateLimiter
    accounts: Accounts
    knowledge: Knowledge
    #: Analyses live mode's camera frames, in this process in both modes (docs/protocol.md).
    live: FrameAnalyser
    #: The stages, where this process runs them (embedded mode).
    stages: Stages | None = None
    #: The sweep of abandoned uploads, where this process runs it (embedded mode; distributed,
    #: the workers run it).
    sweeper: asyncio.Task[None] | None = None

    @classmethod
    async def build(cls, settings: Settings) -> Container:
        # The knowledge base and the search index load off the event loop, before the first
        # request rather than inside it.
        knowledge = await asyncio.to_thread(load_knowledge)
        db = Database(settings.sqlalchemy_url)
        hub = None if settings.embedded else RedisHub(settings.redis_url)
        if hub is not None:
            await hub.start()
        event_log = build_event_log(settings, hub)
        runner: ScanRunner
        stages: Stages | None = None
        if settings.embedded:
            deps = await build_pipeline(settings, event_log=event_log, db=db, knowledge=knowledge)
            stages = deps.stages
            runner = EmbeddedRunner(deps)
        else:
            from workers.publisher import CeleryRunner

            runner = CeleryRunner(
                settings.broker_url, settings.celery_queue,
                quorum=settings.celery_queue_type is QueueType.QUORUM,
            )
        storage = build_storage(settings)
        if isinstance(storage, S3Storage):
            await storage.ensure_bucket()
        sweeper = None
        if settings.embedded:
            sweeper = asyncio.create_task(
                sweep_periodically(db, storage, settings.uploads), name="upload-sweep"
            )
        tokens = TokenService(
            jwt_secret(settings),
            issuer=settings.auth.jwt_issuer,
            audience=settings.auth.jwt_audience,
            access_ttl_s=settings.auth.access_ttl_s,
        )
        return cls(
            settings=settings,
            db=db,
            log=event_log,
            hub=hub,
            runner=runner,
            storage=storage,
            tokens=tokens,
            limiter=build_rate_limiter(settings),
            accounts=Accounts.from_settings(settings),
            knowledge=knowledge,
            live=FrameAnalyser(EmbeddedClassifier()),
            stages=stages,
            sweeper=sweeper,
        )

    async def close(self) -> None:
        self.live.close()
        if self.sweeper is not None:
            self.sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sweeper
        await self.runner.close()
        await self.limiter.close()
        if self.stages is not None:
            await close_stages(self.stages)
        if self.hub is not None:
            await self.hub.close()
        await self.log.close()
        await self.db.dispose()
