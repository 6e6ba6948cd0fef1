"""The clarify wait in distributed mode and in a job that runs twice.

* A person may take longer to answer than redis-py's default socket timeout (5 s): the wait
  must not end with a TimeoutError (real Redis).
* A job the broker runs again after its worker died must reach the same clarify decision at
  once: the answer was already taken off the list by the first run (in-memory log, SQLite).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protocol.messages import Classification, InlineImage, Locale
from server.contracts import CoachingResult, ScanInput, Stages
from server.db import Database
from server.events.memory import MemoryEventLog
from server.events.redis import RedisEventLog
from server.migrate import upgrade
from server.pipeline.jobs import ScanJob
from server.pipeline.run import PipelineDeps, run_scan
from server.users.models import new_id
from tests.conftest import REDIS_URL
from tests.support.db import a_user
from tests.support.stages import InstantLocations, InstantVision, TestClarifier


@pytest.mark.slow
async def test_an_answer_after_the_default_socket_timeout_still_arrives() -> None:
    log = RedisEventLog(REDIS_URL)
    sid = uuid.uuid4().hex
    try:
        await log.create_session(sid, "u")

        async def answer_late() -> None:
            await asyncio.sleep(6.5)  # redis-py's default socket timeout is 5 s
            await log.put_answer(sid, "r1", "pet_bottle")

        answering = asyncio.create_task(answer_late())
        started = time.monotonic()
        assert await log.wait_answer(sid, "r1", 20) == "pet_bottle"
        assert 6 < time.monotonic() - started < 10
        await answering
    finally:
        await log.close()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'clarify.db'}"
    upgrade(url)
    return url


class LabelCoach:
    """Coaches about the label it is given, so a rerun that decided otherwise shows; with
    ``hang_after``, stops there for good (the worker is about to be killed)."""

    def __init__(self, hang_after: int | None = None) -> None:
        self.hang_after = hang_after
        self.hanging = asyncio.Event()

    async def coach(
        self, scan: ScanInput, classification: Classification
    ) -> AsyncIterator[str | CoachingResult]:
        parts = []
        for i in range(4):
            if i == self.hang_after:
                self.hanging.set()
                await asyncio.Event().wait()
            parts.append(f"{classification.label} {i}. ")
            yield parts[-1]
        yield CoachingResult(text="".join(parts), rule_ids=[], backend="test-stage")


def _deps(log: MemoryEventLog, db: Database, coach: LabelCoach, timeout_s: float) -> PipelineDeps:
    return PipelineDeps(
        log=log, db=db, storage=None,  # type: ignore[arg-type]  # inline image: not used
        stages=Stages(vision=InstantVision(), coach=coach, locations=InstantLocations(),
                      clarifier=TestClarifier()),
        max_image_bytes=1 << 20, clarify_timeout_s=timeout_s, jobs_may_rerun=True,
    )


async def _job(log: MemoryEventLog, db: Database) -> ScanJob:
    user = await a_user(db)
    sid = new_id()
    await log.create_session(sid, user)
    return ScanJob(
        scan_id=new_id(), request_id="r1", session_id=sid, user_id=user, locale=Locale.EN,
        enqueued_at=time.time(),
        image=InlineImage(content_type="image/jpeg", data=base64.b64encode(b"UNSURE").decode()),
    )


async def _killed_mid_coaching(job: ScanJob, deps: PipelineDeps, coach: LabelCoach) -> None:
    first = asyncio.create_task(run_scan(job, deps))
    await asyncio.wait_for(coach.hanging.wait(), 5)
    first.cancel()  # the worker dies: nothing after this point runs
    with pytest.raises(asyncio.CancelledError):
        await first


@pytest.mark.parametrize("answer", ["pet_bottle", None])
async def test_a_rerun_decides_as_the_first_run_did_without_waiting_again(
    db: Database, answer: str | None
) -> None:
    log = MemoryEventLog()
    job = await _job(log, db)
    if answer is not None:
        await log.put_answer(job.session_id, job.request_id, answer)
    dying = LabelCoach(hang_after=2)
    await _killed_mid_coaching(job, _deps(log, db, dying, timeout_s=0.5), dying)

    started = time.monotonic()
    assert await run_scan(job, _deps(log, db, LabelCoach(), timeout_s=30)) == "completed"
    assert time.monotonic() - started < 5, "the rerun waited for an answer again"
    events = await log.read_since(job.session_id, 0)
    assert events is not None
    mine = [json.loads(e) for _, e in events]
    kinds = [e["type"] for e in mine]
    assert kinds.count("scan.clarify") == 1 and kinds.count("scan.done") == 1
    label = answer or "glass_bottle"  # the pick, or the best guess after the timeout
    deltas = [e["text"] for e in mine if e["type"] == "coaching.delta"]
    assert deltas == [f"{label} {i}. " for i in range(4)]
    assert kinds.count("scan.classified") == (2 if answer else 1)
