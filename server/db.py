"""Database engine, session factory and the declarative base shared by every domain's models.

The same models and migrations run on PostgreSQL (asyncpg) and SQLite (aiosqlite).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Insert, MetaData, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

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


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            # WAL lets readers run beside the single writer; foreign keys are off by default.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def make_write_engine(url: str, engine: AsyncEngine) -> AsyncEngine:
    """The engine of :class:`GroupWriter`: on PostgreSQL its own small pool in autocommit
    (one statement is one round trip and one durable commit, with no BEGIN/COMMIT trips) and
    without a pre-ping round trip at checkout (a dropped connection is retried instead); on
    SQLite the main engine, since the file has one writer at a time anyway."""
    if url.startswith("sqlite"):
        return engine
    return create_async_engine(
        url, pool_size=4, max_overflow=4, isolation_level="AUTOCOMMIT"
    )


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

    def __init__(self, engine: AsyncEngine, table: Table, *, max_batch: int = 200) -> None:
        dialect = engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._engine = engine
        self._statement: Insert = insert(table).on_conflict_do_nothing()
        self._columns = [column.name for column in table.columns]
        self._max_batch = max_batch
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, row: dict[str, Any]) -> None:
        unknown = row.keys() - set(self._columns)
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
        for attempt in range(2):
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(self._statement, rows)
                return
            except DBAPIError as exc:
                if attempt or not exc.connection_invalidated:
                    raise
                log.info("database connection was dropped; retrying on a new one")


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
        self._write_engine: AsyncEngine | None = None
        self._writers: dict[str, GroupWriter] = {}

    def writer(self, table: Table) -> GroupWriter:
        """This process's group-commit writer for ``table`` (see :class:`GroupWriter`)."""
        found = self._writers.get(table.name)
        if found is None:
            if self._write_engine is None:
                self._write_engine = make_write_engine(self.url, self.engine)
            found = self._writers[table.name] = GroupWriter(self._write_engine, table)
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
        if self._write_engine is not None and self._write_engine is not self.engine:
            await self._write_engine.dispose()
        await self.engine.dispose()
