"""First-run preparation of embedded mode: the data folder and the database schema."""

from __future__ import annotations

import asyncio

from server.migrate import upgrade
from server.settings import Settings


async def prepare_embedded(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Alembic's env runs its own event loop; keep it off ours.
    await asyncio.to_thread(upgrade, settings.sqlalchemy_url)
