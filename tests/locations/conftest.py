"""Databases for the locations tests: SQLite (embedded) and PostgreSQL with PostGIS.

Both are created through the real migrations and filled with the packaged snapshot by the
real importer, so the search tests run against the whole data set the product ships.
The PostgreSQL database is the run's own (``pg_url`` in tests/conftest.py); PostGIS must be
installed (scripts/ensure_postgis.sh).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.db import Database
from server.locations.cli import run_import
from server.locations.normalize import PointRecord, packaged_snapshot, read_snapshot
from server.migrate import upgrade

SHARED_LOCATIONS = Path(__file__).resolve().parents[3] / "shared" / "data" / "locations"


@pytest.fixture(scope="session")
def snapshot_records() -> list[PointRecord]:
    records, _ = read_snapshot(packaged_snapshot())
    return records


async def _migrated(url: str) -> Database:
    await asyncio.to_thread(upgrade, url)
    return Database(url)


@pytest.fixture(scope="session")
async def sqlite_db(
    tmp_path_factory: pytest.TempPathFactory, snapshot_records: list[PointRecord]
) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('loc') / 'points.db'}"
    db = await _migrated(url)
    await run_import(db, snapshot_records, show_progress=False)
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
async def pg_db(pg_url: str, snapshot_records: list[PointRecord]) -> AsyncIterator[Database]:
    db = Database(pg_url)
    await run_import(db, snapshot_records, show_progress=False)
    yield db
    await db.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def loaded_db(request: pytest.FixtureRequest) -> Database:
    """The same search tests run on both back ends."""
    name = "sqlite_db" if request.param == "sqlite" else "pg_db"
    db: Database = request.getfixturevalue(name)
    return db
