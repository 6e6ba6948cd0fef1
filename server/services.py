"""The process's long-lived parts, built once from settings and shared by every request."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from server.auth.service import Accounts
from server.auth.tokens import TokenService
from server.db import Database
from server.events.base import EventLog
from server.events.memory import MemoryEventLog
from server.events.redis import RedisEventLog, RedisHub
from server.limits import RateLimiter, build_rate_limiter
from server.pipeline.factory import build_stages
from server.pipeline.run import PipelineDeps
from server.pipeline.runner import CeleryRunner, EmbeddedRunner, ScanRunner
from server.pipeline.stages import Stages
from server.settings import Settings
from server.uploads.storage import LocalStorage, S3Storage, Storage

if TYPE_CHECKING:
    from server.ws.connection import Connection

log = logging.getLogger(__name__)


def _jwt_secret(settings: Settings) -> str:
    if settings.auth.jwt_secret is not None:
        return settings.auth.jwt_secret.get_secret_value()
    # Embedded only (distributed mode requires the setting): one random key per install,
    # kept so that tokens survive a restart.
    path = settings.data_dir / "jwt-secret"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def build_storage(settings: Settings, secret: str) -> Storage:
    if settings.embedded and settings.s3.endpoint_url is None:
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


async def build_pipeline_deps(
    settings: Settings, *, log_: EventLog | None = None, db: Database | None = None
) -> PipelineDeps:
    """What a worker process (or the embedded server) needs to run scans."""
    db = db or Database(settings.sqlalchemy_url)
    secret = _jwt_secret(settings)
    stages = await build_stages(settings, db)
    return PipelineDeps(
        log=log_ or build_event_log(settings, None),
        db=db,
        storage=build_storage(settings, secret),
        stages=stages,
        max_image_bytes=settings.uploads.max_bytes,
        clarify_timeout_s=settings.session.clarify_timeout_s,
    )


async def close_stages(stages: Stages) -> None:
    """Close the HTTP pools of stages that hold one (the LLM backends)."""
    for stage in (stages.vision, stages.coach, stages.chat):
        aclose = getattr(stage, "aclose", None)
        if aclose is not None:
            await aclose()


@dataclass
class Services:
    settings: Settings
    db: Database
    log: EventLog
    hub: RedisHub | None
    runner: ScanRunner
    storage: Storage
    tokens: TokenService
    stages: Stages | None
    limiter: RateLimiter
    accounts: Accounts
    connections: set[Connection] = field(default_factory=set)
    draining: bool = False

    @classmethod
    async def build(cls, settings: Settings) -> Services:
        secret = _jwt_secret(settings)
        db = Database(settings.sqlalchemy_url)
        hub = None if settings.embedded else RedisHub(settings.redis_url)
        if hub is not None:
            await hub.start()
        event_log = build_event_log(settings, hub)
        runner: ScanRunner
        stages: Stages | None = None
        if settings.embedded:
            deps = await build_pipeline_deps(settings, log_=event_log, db=db)
            stages = deps.stages
            runner = EmbeddedRunner(deps)
        else:
            runner = CeleryRunner(settings.broker_url, settings.celery_queue)
        storage = build_storage(settings, secret)
        if isinstance(storage, S3Storage):
            await storage.ensure_bucket()
        tokens = TokenService(
            secret,
            issuer=settings.auth.jwt_issuer,
            audience=settings.auth.jwt_audience,
            access_ttl_s=settings.auth.access_ttl_s,
        )
        return cls(
            settings,
            db,
            event_log,
            hub,
            runner,
            storage,
            tokens,
            stages,
            limiter=build_rate_limiter(settings),
            accounts=Accounts.from_settings(settings),
        )

    async def drain(self, grace_s: float = 10.0) -> None:
        """Close every connection with 1012 once its queued events are written."""
        self.draining = True
        if isinstance(self.runner, EmbeddedRunner):
            # In-process scans die with the process: give running ones a moment to finish.
            await self.runner.wait_idle(timeout=grace_s / 2)
        connections = list(self.connections)
        for connection in connections:
            connection.shutdown()
        if connections:
            await asyncio.wait(
                [asyncio.ensure_future(c.closed.wait()) for c in connections], timeout=grace_s
            )

    async def close(self) -> None:
        await self.runner.close()
        await self.limiter.close()
        if self.stages is not None:
            await close_stages(self.stages)
        if self.hub is not None:
            await self.hub.close()
        await self.log.close()
        await self.db.dispose()
