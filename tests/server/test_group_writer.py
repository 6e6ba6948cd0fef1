"""The group-commit writer that saves scan outcomes, on PostgreSQL and SQLite (both real)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from server.db import Database, _SQLiteWrites
from server.migrate import upgrade
from server.scans import repository as scans
from server.scans.models import Scan
from server.users.models import new_id, utcnow
from tests.support.db import a_user


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'writer.db'}"
        upgrade(url)
        return url
    found: str = request.getfixturevalue("pg_url")
    return found


def outcome(user_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": new_id(), "user_id": user_id, "session_id": "s1", "request_id": new_id(),
        "locale": "ko", "image_kind": "inline", "status": "completed",
        "timings_ms": {"vision": 1.0}, **extra,
    }


class CountingWrites:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self.batches: list[int] = []

    async def execute(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        self.batches.append(len(rows))
        await self.inner.execute(statement, rows)


async def saved(db: Database, ids: list[str]) -> dict[str, Scan]:
    async with db.session() as session:
        rows = (await session.scalars(select(Scan).where(Scan.id.in_(ids)))).all()
    return {row.id: row for row in rows}


async def test_concurrent_writes_share_batches_and_all_commit(db: Database) -> None:
    user = await a_user(db)
    writer = db.writer(Scan.__table__)
    counting = CountingWrites(writer._writes)
    writer._writes = counting  # type: ignore[assignment]
    alone = outcome(user)
    await scans.record_outcome(db, **alone)
    assert counting.batches == [1]
    rows = [outcome(user) for _ in range(60)]
    await asyncio.gather(*(scans.record_outcome(db, **row) for row in rows))
    assert sum(counting.batches) == 61
    assert len(counting.batches) < 10, "rows that arrived together were not batched"
    rows.append(alone)
    found = await saved(db, [row["id"] for row in rows])
    assert set(found) == {row["id"] for row in rows}
    # Absent JSON values are SQL NULL, not JSON null.
    async with db.session() as session:
        nulls = await session.scalar(
            text("SELECT count(*) FROM scans WHERE error IS NULL AND user_id = :u"), {"u": user}
        )
    assert nulls == 61


async def test_first_outcome_wins(db: Database) -> None:
    user = await a_user(db)
    first = outcome(user, status="cancelled")
    await scans.record_outcome(db, **first)
    await scans.record_outcome(db, **{**first, "status": "completed"})
    assert (await saved(db, [first["id"]]))[first["id"]].status == "cancelled"


async def test_a_bad_row_fails_alone(db: Database) -> None:
    user = await a_user(db)
    good = [outcome(user) for _ in range(5)]
    bad = outcome("no-such-user")  # the user was deleted while the scan ran
    results = await asyncio.gather(
        *(scans.record_outcome(db, **row) for row in [*good[:3], bad, *good[3:]]),
        return_exceptions=True,
    )
    assert isinstance(results[3], IntegrityError)
    assert [r for i, r in enumerate(results) if i != 3] == [None] * 5
    assert set(await saved(db, [row["id"] for row in good])) == {row["id"] for row in good}


async def test_a_caller_that_gives_up_does_not_lose_its_row(db: Database) -> None:
    user = await a_user(db)
    row = outcome(user)
    task = asyncio.create_task(scans.record_outcome(db, **row))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if await saved(db, [row["id"]]):
            break
        await asyncio.sleep(0.01)
    assert row["id"] in await saved(db, [row["id"]])


async def test_unknown_columns_are_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="no such columns"):
        await db.writer(Scan.__table__).write({"id": "x", "colour": "blue"})


async def test_postgres_connection_killed_between_writes_is_replaced(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        user = await a_user(db)
        await scans.record_outcome(db, **outcome(user))
        async with db.session() as session:  # kill every other backend: the writer's pool
            await session.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ))
        row = outcome(user)
        await scans.record_outcome(db, **row)
        assert row["id"] in await saved(db, [row["id"]])
    finally:
        await db.dispose()


async def test_finished_at_is_stamped(db: Database) -> None:
    user = await a_user(db)
    before = utcnow().replace(microsecond=0, tzinfo=None)
    row = outcome(user)
    await scans.record_outcome(db, **row)
    stored = (await saved(db, [row["id"]]))[row["id"]]
    assert stored.finished_at is not None
    assert stored.finished_at.replace(tzinfo=None) >= before


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'writer.db'}"
    upgrade(url)
    return url


async def test_sqlite_write_waits_for_another_writer_without_blocking_the_loop(
    sqlite_url: str, tmp_path: Path
) -> None:
    db = Database(sqlite_url)
    try:
        user = await a_user(db)
        await scans.record_outcome(db, **outcome(user))  # the loop's own connection exists
        blocker = sqlite3.connect(tmp_path / "writer.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        row = outcome(user)
        write = asyncio.create_task(scans.record_outcome(db, **row))
        ticks = 0
        for _ in range(20):  # the loop keeps running while the write waits
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 20 and not write.done()
        blocker.execute("COMMIT")
        await asyncio.wait_for(write, 10)
        assert row["id"] in await saved(db, [row["id"]])
        blocker.close()
    finally:
        await db.dispose()


async def test_sqlite_checkpoints_run_off_the_loop(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(sqlite_url)
    try:
        user = await a_user(db)
        writer = db.writer(Scan.__table__)
        writes = writer._writes
        assert isinstance(writes, _SQLiteWrites)
        monkeypatch.setattr(_SQLiteWrites, "CHECKPOINT_EVERY", 3)
        threads: list[str] = []
        real = writes._checkpoint

        def checkpoint() -> None:
            threads.append(threading.current_thread().name)
            real()

        monkeypatch.setattr(writes, "_checkpoint", checkpoint)
        for _ in range(7):
            await scans.record_outcome(db, **outcome(user))
        await asyncio.sleep(0.2)
        assert len(threads) == 2
        assert all(name.startswith("sqlite-writer") for name in threads)
        assert writes._fast is not None
        assert writes._fast.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    finally:
        await db.dispose()


async def test_postgres_url_options_for_sqlalchemy_do_not_reach_the_server(pg_url: str) -> None:
    # prepared_statement_cache_size is an option of SQLAlchemy's asyncpg adapter; passed to
    # asyncpg as is it would become an unknown server setting and every write would fail.
    db = Database(pg_url + "?prepared_statement_cache_size=0")
    try:
        user = await a_user(db)
        row = outcome(user)
        await scans.record_outcome(db, **row)
        assert row["id"] in await saved(db, [row["id"]])
    finally:
        await db.dispose()
