"""Database engine, session factory and the declarative base shared by every domain's models.

The same models and migrations run on PostgreSQL (asyncpg) and SQLite (aiosqlite).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import Dialect, Insert, MetaData, Table, event, make_url
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.dialects.sqlite import pysqlite as sqlite_pysqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from server.files import narrow_if_exists, private_file

log = logging.getLogger(__name__)


#: Errors of a query that no retry can cure.
_PERMANENT_ERRORS = (
    sa_exc.ProgrammingError, sa_exc.DataError, sa_exc.IntegrityError, sa_exc.NotSupportedError
)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unreachable or restarting right now, as opposed to
    a query that can never work. The driver's errors vary with the moment of the outage (a
    refused connection comes through as the OSError it is; a server shutting down as a plain
    DBAPI error; a connection lost mid-query as an interface or internal error), so every DBAPI
    error counts but the ones that describe the query itself."""
    if isinstance(exc, OSError | TimeoutError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or not isinstance(exc, _PERMANENT_ERRORS)
    return False

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


def private_sqlite(url: str) -> None:
    """Create the SQLite file owner-only before SQLite opens it: SQLite creates a database
    with the process's default mode (0644 under the usual umask), and gives its ``-wal`` and
    ``-shm`` files the database file's mode, so these follow. Those of an older install are
    narrowed too."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return  # SQLite reports that itself, as before
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        narrow_if_exists(path.with_name(path.name + suffix))


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        private_sqlite(url)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class CompiledInsert:
    """``INSERT .. ON CONFLICT DO NOTHING`` of every column of one table, compiled once by
    SQLAlchemy for one dialect, with each column's bind processor (JSON, dates), so that a batch
    goes to the driver without SQLAlchemy's per-execution work. ``statement`` is the same
    insert as a SQLAlchemy construct, for an engine."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        self.statement: Insert = insert(table).on_conflict_do_nothing()
        compiled = self.statement.compile(dialect=dialect)
        self.sql = compiled.string
        order = compiled.positiontup or []
        columns = {column.name: column for column in table.columns}
        self._order = list(order)
        self._processors = [
            columns[name].type.dialect_impl(dialect).bind_processor(dialect) for name in order
        ]

    def params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            value if process is None else process(value)
            for value, process in zip((row[name] for name in self._order), self._processors,
                                      strict=True)
        )


def _integrity(insert: CompiledInsert, exc: Exception) -> IntegrityError:
    """The driver's constraint violation as SQLAlchemy's, the one callers know."""
    return IntegrityError(insert.sql, None, exc)


class _EngineWrites:
    """Runs a write through a SQLAlchemy engine: an in-memory SQLite database, which exists
    only on the main engine's connection."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.dialect = engine.dialect
        self._engine = engine

    async def execute(self, insert: CompiledInsert, rows: list[dict[str, Any]]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert.statement, rows)

    async def dispose(self) -> None:
        pass


class _PostgresWrites:
    """Runs a write on PostgreSQL through a small asyncpg pool of its own, outside
    SQLAlchemy's session machinery: one row is one prepared statement in autocommit (one round
    trip, one durable commit); a batch is one ``executemany`` in a transaction. A failed write
    (other than a constraint violation) closes its connection and is retried once on a new one."""

    def __init__(self, url: str) -> None:
        # PGDialect.__init__ is unannotated in SQLAlchemy, so the call is "untyped".
        self.dialect = postgresql_asyncpg.dialect()  # type: ignore[no-untyped-call]
        # The connection's parts only: a SQLAlchemy URL may carry options for SQLAlchemy's
        # driver adapter that asyncpg would send to the server as settings.
        parts = make_url(url)
        self._connect: dict[str, Any] = {
            "host": parts.host, "port": parts.port, "user": parts.username,
            "password": parts.password, "database": parts.database,
        }
        ssl = parts.query.get("ssl") or parts.query.get("sslmode")
        if isinstance(ssl, str):
            self._connect["ssl"] = ssl
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(**self._connect, min_size=1, max_size=4)
            return self._pool

    async def execute(self, insert: CompiledInsert, rows: list[dict[str, Any]]) -> None:
        params = [insert.params(row) for row in rows]
        pool = self._pool or await self._get_pool()
        for attempt in range(2):
            async with pool.acquire() as conn:
                try:
                    if len(params) == 1:
                        await conn.execute(insert.sql, *params[0])
                    else:
                        async with conn.transaction():
                            await conn.executemany(insert.sql, params)
                    return
                except asyncpg.IntegrityConstraintViolationError as exc:
                    raise _integrity(insert, exc) from exc
                except Exception:
                    # A connection the server dropped (restart, failover, terminated backend)
                    # fails in one of several ways; it is not trusted again either way. (The
                    # pool may already have taken back one it saw close.)
                    with contextlib.suppress(asyncpg.InterfaceError):
                        conn.terminate()
                    if attempt:
                        raise
                    log.info("database write failed; retrying once on a new connection",
                             exc_info=True)

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class _SQLiteWrites:
    """Runs a write on SQLite, on the event loop itself when it can.

    A write in WAL mode with ``synchronous=NORMAL`` is a write to the WAL file with no fsync:
    tens of microseconds, far less than a hop to a thread and back (about 0.1 ms when the
    machine is busy, 0.3 ms when it was idle, measured on our 2-core VM). So the loop's own
    connection takes the write lock without waiting (busy timeout 0) and writes; only when
    another connection holds the lock does the write go to a thread of its own that may wait
    for it. Checkpoints, which do fsync, never run on the loop: the loop's connection does not
    checkpoint automatically, and every ``CHECKPOINT_EVERY`` commits a passive checkpoint runs
    in the thread.
    """

    CHECKPOINT_EVERY = 256

    def __init__(self, url: str) -> None:
        self.dialect = sqlite_pysqlite.dialect()
        path = make_url(url).database
        assert path, "an in-memory database goes through _EngineWrites"
        self._path = path
        self._fast: sqlite3.Connection | None = None
        self._slow: sqlite3.Connection | None = None  # used only in the thread
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._commits = 0

    def _connect(self, timeout: float) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=timeout, isolation_level=None,
                               check_same_thread=False)
        _sqlite_pragmas(conn, None)
        return conn

    def _connect_fast(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=0, isolation_level=None,
                               check_same_thread=False)
        try:
            _sqlite_pragmas(conn, None)
            conn.execute("PRAGMA wal_autocheckpoint=0")
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _write(conn: sqlite3.Connection, insert: CompiledInsert,
               params: list[tuple[Any, ...]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(insert.sql, params)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _write_waiting(self, insert: CompiledInsert, params: list[tuple[Any, ...]]) -> None:
        if self._slow is None:
            self._slow = self._connect(30)
        self._write(self._slow, insert, params)

    def _checkpoint(self) -> None:
        try:
            if self._slow is None:
                self._slow = self._connect(30)
            self._slow.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            log.warning("WAL checkpoint failed", exc_info=True)

    async def execute(self, insert: CompiledInsert, rows: list[dict[str, Any]]) -> None:
        params = [insert.params(row) for row in rows]
        try:
            try:
                if self._fast is None:
                    self._fast = self._connect_fast()
                self._write(self._fast, insert, params)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._thread, self._write_waiting, insert, params)
        except sqlite3.IntegrityError as exc:
            raise _integrity(insert, exc) from exc
        self._commits += 1
        if self._commits % self.CHECKPOINT_EVERY == 0:
            self._thread.submit(self._checkpoint)

    async def dispose(self) -> None:
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close_slow)
        self._thread.shutdown(wait=False)

    def _close_slow(self) -> None:
        if self._slow is not None:
            self._slow.close()
            self._slow = None


_Writes = _EngineWrites | _PostgresWrites | _SQLiteWrites


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
        self, writes: _Writes, table: Table, *, max_batch: int = 200
    ) -> None:
        self._writes = writes
        self._insert = CompiledInsert(table, writes.dialect)
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
        await self._writes.execute(self._insert, rows)


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
        self._writes: _Writes | None = None
        self._writers: dict[str, GroupWriter] = {}

    def writer(self, table: Table) -> GroupWriter:
        """This process's group-commit writer for ``table`` (see :class:`GroupWriter`)."""
        found = self._writers.get(table.name)
        if found is None:
            if self._writes is None:
                if not self.url.startswith("sqlite"):
                    self._writes = _PostgresWrites(self.url)
                elif make_url(self.url).database:
                    self._writes = _SQLiteWrites(self.url)
                else:
                    self._writes = _EngineWrites(self.engine)
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
