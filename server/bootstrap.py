"""First-run preparation of embedded mode: the data folder (owner-only) and the database
schema."""

from __future__ import annotations

import asyncio
import logging

from server.files import private_dir
from server.migrate import upgrade
from server.settings import Settings

log = logging.getLogger(__name__)


async def prepare_embedded(settings: Settings) -> None:
    private_dir(settings.data_dir)
    # Alembic's env runs its own event loop; keep it off ours.
    await asyncio.to_thread(upgrade, settings.sqlalchemy_url)
    await _load_collection_points(settings)


async def _load_collection_points(settings: Settings) -> None:
    """A fresh install gets the packaged snapshot of collection points (about 3 s, once)."""
    from sqlalchemy import func, select

    from server.db import Database
    from server.locations.cli import run_import
    from server.locations.models import CollectionPoint
    from server.locations.normalize import packaged_snapshot, read_snapshot

    db = Database(settings.sqlalchemy_url)
    try:
        async with db.session() as session:
            count = await session.scalar(select(func.count()).select_from(CollectionPoint))
        if count:
            return
        records, _ = await asyncio.to_thread(read_snapshot, packaged_snapshot())
        log.info("loading %d collection points from the packaged snapshot", len(records))
        await run_import(db, records, show_progress=False)
    finally:
        await db.dispose()
