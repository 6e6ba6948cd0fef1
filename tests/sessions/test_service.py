"""The session service on its own: no socket, the in-process event log, a SQLite database
with the migrations applied, the in-memory limiter, and a runner that records its jobs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from protocol.messages import (
    AuthRefresh,
    ChatMessage,
    ClarifyAnswer,
    Locale,
    ScanCancel,
    ScanStart,
)
from server.auth.tokens import TokenService
from server.db import Database
from server.events.memory import MemoryEventLog
from server.limits.base import Quota
from server.limits.memory import MemoryRateLimiter
from server.migrate import upgrade
from server.pipeline.jobs import ChatJob, ScanJob
from server.scans.models import Scan
from server.sessions.service import HistoryLost, Session, SessionDeps
from server.users.models import new_id
from tests.support.db import a_user

PHOTO = {"kind": "inline", "content_type": "image/jpeg", "data": "SlBFRw=="}


class Runner:
    """Records what it is given; fails or waits on request."""

    def __init__(self) -> None:
        self.scans: list[ScanJob] = []
        self.chats: list[ChatJob] = []
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def submit(self, job: ScanJob) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("broker away")
        self.scans.append(job)

    async def submit_chat(self, job: ChatJob) -> None:
        if self.fail:
            raise ConnectionError("broker away")
        self.chats.append(job)

    async def health(self) -> dict[str, str]:
        return {}

    async def wait_idle(self, timeout: float) -> None:
        return None

    async def close(self) -> None:
        return None


class Port:
    def __init__(self) -> None:
        self.notified: list[dict[str, Any]] = []
        self.released: list[str] = []

    def notify(self, event: BaseModel) -> None:
        self.notified.append(json.loads(event.model_dump_json()))

    def release(self, request_id: str) -> None:
        self.released.append(request_id)


class Setup:
    def __init__(self, session: Session, port: Port, runner: Runner, log: MemoryEventLog,
                 db: Database, tokens: TokenService) -> None:
        self.session, self.port, self.runner, self.log = session, port, runner, log
        self.db, self.tokens = db, tokens

    async def events(self) -> list[dict[str, Any]]:
        found = await self.log.read_since(self.session.session_id, 0)
        assert found is not None
        return [json.loads(text) for _, text in found]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"
    upgrade(url)  # alembic runs its own event loop: outside the test's
    return url


@pytest.fixture
async def setup(db_url: str) -> Any:
    db = Database(db_url)
    user_id = await a_user(db)
    log = MemoryEventLog()
    session_id = new_id()
    await log.create_session(session_id, user_id)
    tokens = TokenService("k" * 48, issuer="test", audience="test", access_ttl_s=600)
    runner = Runner()
    limiter = MemoryRateLimiter({"scan": Quota(3, 100), "chat": Quota(1, 100)})
    deps = SessionDeps(log=log, db=db, storage=None,  # type: ignore[arg-type]  # inline only
                       runner=runner, limiter=limiter, tokens=tokens)
    port = Port()
    claims = tokens.verify_access(tokens.issue_access(user_id, guest=True))
    session = Session(deps, port, session_id=session_id, claims=claims, locale=Locale.KO)
    await session.budgets()
    yield Setup(session, port, runner, log, db, tokens)
    await db.dispose()


def scan_start(request_id: str, **extra: Any) -> ScanStart:
    return ScanStart.model_validate(
        {"type": "scan.start", "request_id": request_id, "image": PHOTO, **extra}
    )


async def test_an_accepted_scan_is_logged_then_enqueued_with_the_session_locale(
    setup: Setup,
) -> None:
    await setup.session.start_scan(scan_start("r1"))
    [accepted] = await setup.events()
    assert accepted["type"] == "scan.accepted" and accepted["request_id"] == "r1"
    [job] = setup.runner.scans
    assert job.scan_id == accepted["scan_id"] and job.locale is Locale.KO
    assert job.user_id == setup.session.claims.user_id
    assert await setup.log.open_scan(setup.session.session_id, "r1") == job.scan_id
    # The budget went to this connection only, unlogged.
    assert setup.port.notified[-1]["type"] == "rate_limits.updated"


async def test_a_request_id_is_used_once(setup: Setup) -> None:
    await setup.session.start_scan(scan_start("r1"))
    await setup.session.start_scan(scan_start("r1"))
    events = await setup.events()
    assert [e["type"] for e in events] == ["scan.accepted", "error"]
    assert events[1]["code"] == "duplicate_request"
    assert setup.port.released == ["r1"] and len(setup.runner.scans) == 1


async def test_a_scan_the_runner_does_not_take_ends_failed_and_is_saved(setup: Setup) -> None:
    setup.runner.fail = True
    await setup.session.start_scan(scan_start("r1"))
    events = await setup.events()
    assert [e["type"] for e in events] == ["scan.accepted", "scan.done"]
    done = events[1]
    assert done["status"] == "failed" and done["error"]["code"] == "service_unavailable"
    assert done["error"]["retryable"] is True
    async with setup.db.session() as session:
        row = await session.get(Scan, done["scan_id"])
    assert row is not None and row.status == "failed"
    assert await setup.log.open_scans(setup.session.session_id) == {}


async def test_over_budget_is_refused_before_anything_is_logged(setup: Setup) -> None:
    for n in range(3):
        await setup.session.start_scan(scan_start(f"r{n}"))
    await setup.session.start_scan(scan_start("r3"))
    events = await setup.events()
    assert events[-1]["type"] == "error" and events[-1]["code"] == "rate_limited"
    assert events[-1]["retryable"] is True
    assert "r3" in setup.port.released and len(setup.runner.scans) == 3


async def test_cancel_ends_an_open_scan_once(setup: Setup) -> None:
    await setup.session.start_scan(scan_start("r1"))
    cancel = ScanCancel(type="scan.cancel", request_id="r1")
    await setup.session.cancel(cancel)
    await setup.session.cancel(cancel)
    await setup.session.cancel(ScanCancel(type="scan.cancel", request_id="nope"))
    events = await setup.events()
    assert [e["type"] for e in events] == ["scan.accepted", "scan.done", "error", "error"]
    assert events[1]["status"] == "cancelled"
    assert "already ended" in events[2]["message"] and events[2]["code"] == "unknown_request"
    assert events[3]["code"] == "unknown_request" and events[3]["request_id"] == "nope"


async def test_cancel_finds_a_scan_started_on_an_earlier_connection(setup: Setup) -> None:
    await setup.session.start_scan(scan_start("r1"))
    later = Session(setup.session._deps, Port(), session_id=setup.session.session_id,
                    claims=setup.session.claims, locale=Locale.EN)
    assert await later.open_scans() == {"r1"}
    await later.cancel(ScanCancel(type="scan.cancel", request_id="r1"))
    assert (await setup.events())[-1]["status"] == "cancelled"


async def test_a_clarify_answer_reaches_the_scan_and_only_an_open_one(setup: Setup) -> None:
    await setup.session.start_scan(scan_start("r1"))
    await setup.session.answer_clarify(
        ClarifyAnswer(type="scan.clarify.answer", request_id="r1", choice="glass")
    )
    assert await setup.log.wait_answer(setup.session.session_id, "r1", 1) == "glass"
    await setup.session.answer_clarify(
        ClarifyAnswer(type="scan.clarify.answer", request_id="r9", choice="glass")
    )
    assert (await setup.events())[-1]["code"] == "unknown_request"


async def test_a_chat_is_claimed_once_and_counted(setup: Setup) -> None:
    ask = ChatMessage(type="chat.message", request_id="c1", text="페트병 라벨은?")
    await setup.session.start_chat(ask)
    [job] = setup.runner.chats
    assert job.text == "페트병 라벨은?" and job.locale is Locale.KO
    assert await setup.session.open_chats() == {"c1"}
    assert not await setup.log.open_chat(setup.session.session_id, "c1")
    # The chat budget is one a minute here: the next question is refused, its slot freed.
    await setup.session.start_chat(ChatMessage(type="chat.message", request_id="c2", text="?"))
    events = await setup.events()
    assert events[-1]["code"] == "rate_limited" and events[-1]["request_id"] == "c2"
    assert setup.port.released == ["c2"]


async def test_a_refresh_keeps_the_user_and_tells_only_this_connection(setup: Setup) -> None:
    user = setup.session.claims.user_id
    fresh = setup.tokens.issue_access(user, guest=True, ttl_s=1200)
    await setup.session.refresh_auth(AuthRefresh(type="auth.refresh", request_id="a1",
                                                 token=fresh))
    assert setup.port.notified[-1]["type"] == "auth.refreshed"
    assert setup.session.claims.expires_at > 0
    before = setup.session.claims
    other = setup.tokens.issue_access(await a_user(setup.db), guest=True)
    await setup.session.refresh_auth(AuthRefresh(type="auth.refresh", request_id="a2",
                                                 token=other))
    assert setup.session.claims is before
    assert (await setup.events())[-1]["code"] == "auth_invalid"


async def test_a_gone_history_is_reported_not_swallowed(setup: Setup) -> None:
    gone = Session(setup.session._deps, Port(), session_id="no-such-session",
                   claims=setup.session.claims, locale=Locale.KO)
    with pytest.raises(HistoryLost):
        await gone.cancel(ScanCancel(type="scan.cancel", request_id="r1"))
    with pytest.raises(HistoryLost):
        await gone.keep_alive()


async def test_an_accepted_scan_is_enqueued_even_if_its_caller_is_cancelled(
    setup: Setup,
) -> None:
    setup.runner.gate = asyncio.Event()
    caller = asyncio.create_task(setup.session.start_scan(scan_start("r1")))
    for _ in range(100):
        if await setup.events():
            break
        await asyncio.sleep(0.01)
    caller.cancel()  # the connection ends between scan.accepted and the enqueue
    with pytest.raises(asyncio.CancelledError):
        await caller
    setup.runner.gate.set()
    await setup.session.settle(timeout=5)
    assert [job.request_id for job in setup.runner.scans] == ["r1"]


async def test_a_question_the_runner_does_not_take_ends_with_its_chat_done(setup: Setup) -> None:
    setup.runner.fail = True
    await setup.session.start_chat(ChatMessage(type="chat.message", request_id="c1", text="?"))
    [done] = await setup.events()
    assert done["type"] == "chat.done" and done["outcome"] == "failed"
    assert done["request_id"] == "c1" and "ask again" in done["fallback_reason"]
    # Answered (if only with a failure): it no longer counts against a resumed session's cap.
    assert await setup.session.open_chats() == set()
