"""Saving a scan's outcome before scan.done: retried while the database is away, never for a
row that cannot be saved (SQLite file database, in-memory event log, instant stages)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from protocol.messages import InlineImage, Locale
from server.contracts import Stages
from server.db import Database
from server.events.memory import MemoryEventLog
from server.migrate import upgrade
from server.pipeline import run as pipeline
from server.pipeline.jobs import ScanJob
from server.pipeline.run import PipelineDeps, run_scan
from server.scans.models import Scan
from server.users.models import new_id
from tests.support.db import a_user
from tests.support.stages import InstantCoach, InstantLocations, InstantVision


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'record.db'}"
    upgrade(url)
    return url


class Flaky:
    """The real SQLite writes, failing the first ``failures`` batches as a lost server would."""

    def __init__(self, inner: Any, failures: int) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self.failures = failures

    async def execute(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        if self.failures:
            self.failures -= 1
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        await self.inner.execute(statement, rows)


async def scan(db: Database, user_id: str) -> tuple[ScanJob, list[dict[str, Any]]]:
    log = MemoryEventLog()
    session_id = new_id()
    await log.create_session(session_id, user_id)
    deps = PipelineDeps(
        log=log, db=db, storage=None,  # type: ignore[arg-type]  # inline image: not used
        stages=Stages(vision=InstantVision(), coach=InstantCoach(), locations=InstantLocations()),
        max_image_bytes=1 << 20,
    )
    job = ScanJob(
        scan_id=new_id(), request_id="r1", session_id=session_id, user_id=user_id,
        locale=Locale.KO, enqueued_at=time.time(),
        image=InlineImage(content_type="image/jpeg", data=base64.b64encode(b"JPEG" * 8).decode()),
    )
    await run_scan(job, deps)
    events = await log.read_since(session_id, 0)
    assert events is not None
    return job, [json.loads(e) for _, e in events]


async def test_outcome_is_saved_after_the_database_comes_back(db: Database) -> None:
    user = await a_user(db)
    writer = db.writer(Scan.__table__)
    writer._writes = Flaky(writer._writes, failures=3)  # type: ignore[assignment]
    job, events = await scan(db, user)
    assert [e["type"] for e in events][-2:] == ["bins.suggested", "scan.done"]
    assert events[-1]["status"] == "completed"
    async with db.session() as session:
        row = await session.get(Scan, job.scan_id)
    assert row is not None and row.status == "completed"


async def test_scan_fails_plainly_when_the_outcome_cannot_be_saved(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "RECORD_PATIENCE_S", 0.3)
    user = await a_user(db)
    writer = db.writer(Scan.__table__)
    writer._writes = Flaky(writer._writes, failures=1000)  # type: ignore[assignment]
    _, events = await scan(db, user)
    done = events[-1]
    assert done["type"] == "scan.done" and done["status"] == "failed"
    assert done["error"]["code"] == "internal" and done["error"]["retryable"] is True


async def test_a_row_that_can_never_be_saved_is_not_retried(db: Database) -> None:
    started = time.monotonic()
    _, events = await scan(db, "deleted-user")  # no such user: the foreign key refuses it
    assert time.monotonic() - started < 2
    assert events[-1]["status"] == "failed"


class StuckCoach:
    """A coach whose model never answers (no timeout of its own fired)."""

    async def coach(
        self, scan: Any, classification: Any
    ) -> Any:
        yield "first step. "
        await asyncio.sleep(3600)


async def test_a_scan_past_its_deadline_ends_failed_with_its_scan_done(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the worker's time limit cancelled such a scan: no scan.done, no row."""
    monkeypatch.setattr(pipeline, "SCAN_DEADLINE_S", 0.3)
    log, deps, job = await _setup(db, StuckCoach(), b"JPEG" * 8)
    session_id = job.session_id
    assert await asyncio.wait_for(run_scan(job, deps), 5) == "failed"
    events = [json.loads(e) for _, e in await log.read_since(session_id, 0) or []]
    done = events[-1]
    assert done["type"] == "scan.done" and done["status"] == "failed"
    assert done["error"]["retryable"] is True and "too long" in done["error"]["message"]
    async with db.session() as session:
        row = await session.get(Scan, job.scan_id)
    assert row is not None and row.status == "failed"


async def test_a_second_run_of_a_running_scan_waits_its_turn(db: Database) -> None:
    """The broker redelivers a job while its first run still streams (a lost connection):
    the copy must not interleave its output with the first's; it goes back to the queue, and
    when it runs again the scan has ended and it appends nothing."""
    from server.pipeline.emitter import AlreadyRunning

    log, deps, job = await _setup(db, InstantCoach(), b"SLOW")
    session_id = job.session_id
    first = asyncio.create_task(run_scan(job, deps))
    await asyncio.sleep(0.2)
    with pytest.raises(AlreadyRunning):
        await run_scan(job, deps)
    assert await first == "completed"
    assert await run_scan(job, deps) == "cancelled"  # finds scan.done: stops at once
    events = [json.loads(e) for _, e in await log.read_since(session_id, 0) or []]
    kinds = [e["type"] for e in events]
    assert kinds.count("scan.done") == 1 and kinds.count("coaching.done") == 1
    assert [e["index"] for e in events if e["type"] == "coaching.delta"] == list(range(20))


async def _setup(
    db: Database, coach: Any, image: bytes
) -> tuple[MemoryEventLog, PipelineDeps, ScanJob]:
    """An in-memory session, instant stages but ``coach``, and a job for ``image``."""
    user_id = await a_user(db)
    log = MemoryEventLog()
    session_id = new_id()
    await log.create_session(session_id, user_id)
    deps = PipelineDeps(
        log=log, db=db, storage=None,  # type: ignore[arg-type]  # inline image: not used
        stages=Stages(vision=InstantVision(), coach=coach, locations=InstantLocations()),
        max_image_bytes=1 << 20,
    )
    job = ScanJob(
        scan_id=new_id(), request_id="r1", session_id=session_id, user_id=user_id,
        locale=Locale.KO, enqueued_at=time.time(),
        image=InlineImage(content_type="image/jpeg", data=base64.b64encode(image).decode()),
    )
    return log, deps, job
