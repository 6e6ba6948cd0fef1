"""``wastecoach locations import``: load collection points into the configured database.

By default the packaged snapshot (``server/locations/data/points.jsonl.gz``, built from the
public files by ``scripts/build_locations_snapshot.py``) is loaded, so a fresh install needs
nothing outside the package. ``--source DIR`` runs the same normaliser over a directory of raw
files instead. Either way the import upserts by id, rewrites only changed rows, removes points
their source no longer lists, and prints what was loaded, merged and rejected, with reasons.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.exc import DBAPIError
from tqdm import tqdm

from server.db import Database
from server.locations import service
from server.locations.normalize import (
    PointRecord,
    Report,
    normalise_dir,
    packaged_snapshot,
    read_snapshot,
)
from server.locations.report import format_report


def load(source: Path | None) -> tuple[list[PointRecord], Report, str]:
    """Records to import, the normaliser's report, and a label for where they came from."""
    if source is None:
        path = packaged_snapshot()
        records, report = read_snapshot(path)
        return records, report, f"snapshot {path.name}"
    if source.is_dir():
        records, report = normalise_dir(source)
        return records, report, f"raw files in {source}"
    records, report = read_snapshot(source)
    return records, report, f"snapshot {source}"


async def run_import(
    db: Database,
    records: Sequence[PointRecord],
    *,
    show_progress: bool = True,
) -> service.ImportResult:
    with tqdm(
        total=len(records), unit="pt", desc="importing", disable=not show_progress, file=sys.stderr
    ) as bar:
        async with db.session() as session:

            def advance(n: int) -> None:
                bar.update(n)

            result = await service.import_records(session, records, progress=advance)
    return result


async def _has_table(db: Database) -> bool:
    async with db.engine.connect() as conn:
        return await conn.run_sync(lambda sync: inspect(sync).has_table("collection_points"))


def format_result(result: service.ImportResult) -> str:
    s = result.stats
    lines = [
        f"database: {s.inserted} inserted, {s.updated} updated, {s.unchanged} unchanged, "
        f"{s.removed} removed",
        "points in database per kind:",
    ]
    lines.extend(f"  {kind:<18} {n:>6}" for kind, n in sorted(result.by_kind.items()))
    return "\n".join(lines)


async def import_main(argv: list[str], *, database_url: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wastecoach locations import", description=__doc__)
    parser.add_argument(
        "--source",
        type=Path,
        help="a directory of raw files or a snapshot file (default: the packaged snapshot)",
    )
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: from settings)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    url = args.database_url or database_url
    if url is None:
        from server.settings import get_settings

        url = get_settings().sqlalchemy_url
    try:
        records, report, origin = load(args.source)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"source: {origin}")
    if args.source is None or not args.source.is_dir():
        print("(the figures below are from the normalisation that built the snapshot)")
    print(format_report(report))
    db = Database(url)
    try:
        try:
            has_table = await _has_table(db)
        except (DBAPIError, OSError) as exc:
            print(f"error: cannot open the database: {exc}", file=sys.stderr)
            return 2
        if not has_table:
            print(
                "error: the database has no collection_points table; run `wastecoach migrate` "
                "first",
                file=sys.stderr,
            )
            return 2
        result = await run_import(db, records, show_progress=not args.no_progress)
    finally:
        await db.dispose()
    print(format_result(result))
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``wastecoach locations <action> ...``."""
    if not argv or argv[0] != "import":
        print("usage: wastecoach locations import [--source PATH]", file=sys.stderr)
        return 2
    return asyncio.run(import_main(argv[1:]))
