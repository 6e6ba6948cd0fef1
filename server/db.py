"""Database engine, session factory and the declarative base shared by every domain's models.

The same models and migrations run on PostgreSQL (asyncpg) and SQLite (aiosqlite).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Insert, MetaData, Table, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import SingletonThreadPool

log = logging.getLogger(__name__)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the single writer; a commit is durable once the OS has the
    # WAL page (synchronous=NORMAL): a crash of the process loses nothing, only a power cut
    # can lose the last commits. Foreign keys are off by default in SQLite.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class _AsyncWrites:
    """Runs a write on an async engine. On PostgreSQL: its own small pool in autocommit (one
    statement is one round trip and one durable commit, with no BEGIN/COMMIT trips) without a
    pre-ping round trip at checkout; a connection found dead is replaced and the write retried
    once instead."""

    def __init__(self, url: str, shared: AsyncEngine | None = None) -> None:
        self._owned = shared is None
        self.engine = shared or create_async_engine(
            url, pool_size=4, max_overflow=4, isolation_level="AUTOCOMMIT"
        )

    async def execute(self, statement: Insert, rows: list[dict[str, Any]]) -> None:
        for attempt in range(2):
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(statement, rows)
                return
            except DBAPIError as exc:
                if attempt or not exc.connection_invalidated:
                    raise
                log.info("database connection was dropped; retrying on a new one")

    async def dispose(self) -> None:
        if self._owned:
            await self.engine.dispose()


class _SQLiteWrites:
    """Runs a write on SQLite in one thread of its own with one connection (the standard
    library's driver): a batch costs one thread hop, where the async driver would hop for every
    call of the statement, the transaction and the pool."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(
            make_url(url).set(drivername="sqlite"),
            connect_args={"timeout": 30, "check_same_thread": False},
            poolclass=SingletonThreadPool,
        )
        event.listen(self.engine, "connect", _sqlite_pragmas)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")

    def _run(self, statement: Insert, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(statement, rows)

    async def execute(self, statement: Insert, rows: list[dict[str, Any]]) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._run, statement, rows)

    async def dispose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self.engine.dispose)
        self._thread.shutdown(wait=False)


class GroupWriter:
    """Inserts rows into one table with group commit, skipping rows whose key exists.

    ``write`` returns once the row is committed. A row that arrives while a write is in flight
    joins the next batch, so with no load a row is written at once, and under load many rows
    share one statement, one round trip and one commit. One batch is in flight per process,
    which on SQLite also keeps the process's writers from colliding on the file lock, where
    SQLite's busy handler would make them sleep for milliseconds at a time.

    A failing batch is retried row by row, so one bad row (say, of a user deleted meanwhile)
    fails only its own ``write``. A connection found dead is replaced and the batch retried once.
    """

    def __init__(
        self, writes: _AsyncWrites | _SQLiteWrites, table: Table, *, max_batch: int = 200
    ) -> None:
        dialect = writes.engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._writes = writes
        self._statement: Insert = insert(table).on_conflict_do_nothing()
        self._columns = [column.name for column in table.columns]
        self._known = frozenset(self._columns)
        self._max_batch = max_batch
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, row: dict[str, Any]) -> None:
        unknown = row.keys() - self._known
        if unknown:
            raise ValueError(f"no such columns: {sorted(unknown)}")
        # Every row names every column, so that a batch is one executemany.
        full = {name: row.get(name) for name in self._columns}
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((full, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="group-writer")
        # A caller that gives up (cancelled) does not take its row back: it is still written.
        await asyncio.shield(future)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: len(batch)]
                await self._write_batch(batch)
        finally:
            self._flusher = None
            for _, future in self._pending:
                if not future.done():
                    future.set_exception(RuntimeError("the database writer stopped"))
            self._pending.clear()

    async def _write_batch(self, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        try:
            await self._execute([row for row, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                if not future.done():
                    future.set_exception(RuntimeError("the database writer stopped"))
            raise
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            log.warning("a batch of %d rows failed (%s); writing them one by one", len(batch), exc)
            for row, future in batch:
                try:
                    await self._execute([row])
                except Exception as row_exc:
                    _settle(future, row_exc)
                else:
                    _settle(future, None)
            return
        for _, future in batch:
            _settle(future, None)

    async def _execute(self, rows: list[dict[str, Any]]) -> None:
        await self._writes.execute(self._statement, rows)


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)


class Database:
    """Owns the engine; ``session()`` is the one place that commits or rolls back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writes: _AsyncWrites | _SQLiteWrites | None = None
        self._writers: dict[str, GroupWriter] = {}

    def writer(self, table: Table) -> GroupWriter:
        """This process's group-commit writer for ``table`` (see :class:`GroupWriter`)."""
        found = self._writers.get(table.name)
        if found is None:
            if self._writes is None:
                if not self.url.startswith("sqlite"):
                    self._writes = _AsyncWrites(self.url)
                elif make_url(self.url).database:
                    self._writes = _SQLiteWrites(self.url)
                else:  # an in-memory database exists only on the main engine's connection
                    self._writes = _AsyncWrites(self.url, shared=self.engine)
            found = self._writers[table.name] = GroupWriter(self._writes, table)
        return found

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        if self._writes is not None:
            await self._writes.dispose()
            self._writes = None
            self._writers.clear()
        await self.engine.dispose()
