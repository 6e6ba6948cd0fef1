"""The 0004_accounts migration applies, reverts and re-applies on SQLite (embedded)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import inspect

from server.db import make_engine
from server.migrate import downgrade, upgrade


async def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            names: list[str] = await conn.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()
    return set(names)


def test_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    accounts = {"identities", "refresh_tokens", "oauth_states"}
    upgrade(url, "0004_accounts")
    assert accounts <= asyncio.run(_tables(url))
    downgrade(url, "0003_chat")
    assert not accounts & asyncio.run(_tables(url))
    upgrade(url, "0004_accounts")
    assert accounts <= asyncio.run(_tables(url))
