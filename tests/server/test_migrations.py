"""Migrations go up and down cleanly on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

import server.models  # noqa: F401  (registers every table)
from server.db import Base, make_engine
from server.migrate import downgrade, include_object, upgrade
from tests.support.pg import scratch_database


def _diff(url: str) -> list[object]:
    async def run() -> list[object]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:

                def compare(sync: Connection) -> list[object]:
                    context = MigrationContext.configure(
                        sync, opts={"include_object": include_object, "compare_type": False}
                    )
                    return list(compare_metadata(context, Base.metadata))

                return await conn.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _roundtrip(url: str) -> None:
    upgrade(url)
    assert _diff(url) == []
    downgrade(url, "base")
    upgrade(url)
    assert _diff(url) == []


def test_sqlite_roundtrip(tmp_path: Path) -> None:
    _roundtrip(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.timeout(120)
# Reflection does not know PostGIS's geography type; the column is migration-only anyway.
@pytest.mark.filterwarnings("ignore:Did not recognize type 'geography'")
def test_postgresql_roundtrip() -> None:
    with scratch_database("wc_mig") as url:
        _roundtrip(url)
