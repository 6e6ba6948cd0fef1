"""``wastecoach locations import``: counts, idempotency, updates and removals, on both back ends."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from server.db import Database
from server.locations.cli import import_main, main, run_import
from server.locations.models import CollectionPoint
from server.locations.normalize import PointRecord
from server.migrate import upgrade
from tests.locations.test_normalize import write_raw_dir


async def _count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(CollectionPoint)) or 0)


async def test_snapshot_import_counts_and_second_run_changes_nothing(
    loaded_db: Database, snapshot_records: list[PointRecord]
) -> None:
    # ``loaded_db`` already ran the import once.
    expected = Counter(r.kind for r in snapshot_records)
    result = await run_import(loaded_db, snapshot_records, show_progress=False)
    assert (result.stats.inserted, result.stats.updated, result.stats.removed) == (0, 0, 0)
    assert result.stats.unchanged == len(snapshot_records)
    assert result.by_kind == dict(expected)
    assert await _count(loaded_db) == len(snapshot_records)


async def test_changed_and_vanished_points(
    tmp_path: Path, snapshot_records: list[PointRecord]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    try:
        subset = [dataclasses.replace(r) for r in snapshot_records[:500]]
        first = await run_import(db, subset, show_progress=False)
        assert first.stats.inserted == 500

        renamed = dataclasses.replace(subset[0], name=subset[0].name + " (이전)")
        second = await run_import(db, [renamed, *subset[1:499]], show_progress=False)
        assert (second.stats.inserted, second.stats.updated, second.stats.removed) == (0, 1, 1)
        async with db.session() as session:
            row = await session.get(CollectionPoint, renamed.id)
            assert row is not None and row.name == renamed.name
            assert await session.get(CollectionPoint, subset[499].id) is None
    finally:
        await db.dispose()


async def test_cli_imports_raw_files_and_reports_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "raw").mkdir()
    raw = write_raw_dir(tmp_path / "raw")
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    await asyncio.to_thread(upgrade, url)

    args = ["--source", str(raw), "--no-progress"]
    assert await import_main(args, database_url=url) == 0
    out = capsys.readouterr().out
    assert "database: 9 inserted, 0 updated, 0 unchanged, 0 removed" in out
    for reason in (
        "missing_coordinates",
        "invalid_coordinates",
        "outside_korea",
        "missing_name_and_address",
        "swapped_coordinates",
        "across_sources",
    ):
        assert reason in out, reason
    assert "[outside_korea] mois_medicine: 먼 약국" in out

    assert await import_main(args, database_url=url) == 0
    assert "database: 0 inserted, 0 updated, 9 unchanged, 0 removed" in capsys.readouterr().out


async def test_cli_rejects_a_missing_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await import_main(
        ["--source", str(tmp_path / "nope.jsonl.gz")], database_url="sqlite+aiosqlite://"
    )
    assert code == 2
    assert "error:" in capsys.readouterr().err


async def test_cli_asks_for_migrations_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    assert await import_main(["--no-progress"], database_url=url) == 2
    assert "wastecoach migrate" in capsys.readouterr().err


def test_main_needs_the_import_action(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export"]) == 2
    assert "usage" in capsys.readouterr().err
