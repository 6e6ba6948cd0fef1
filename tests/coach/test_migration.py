"""The 0003_chat migration creates the table the ChatMessage model maps, on SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import inspect

from server.coach.repository import ChatRepository, Role
from server.db import Database
from server.migrate import downgrade, upgrade


async def test_upgrade_creates_a_working_chat_table(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}"
    await asyncio.to_thread(upgrade, url, "0003_chat")
    database = Database(url)
    try:
        repo = ChatRepository(max_stored=2)
        async with database.session() as session:
            for n in range(3):
                await repo.append(
                    session,
                    user_id="u",
                    session_id="s",
                    scan_id=None,
                    role=Role.USER,
                    content=str(n),
                    item_ids=[1],
                    rule_ids=["r"],
                )
        async with database.session() as session:
            turns = await repo.history(session, user_id="u", session_id="s", scan_id=None, limit=10)
        assert [(t.content, t.item_ids, t.rule_ids) for t in turns] == [
            ("1", (1,), ("r",)),
            ("2", (1,), ("r",)),
        ]
        async with database.engine.connect() as conn:
            indexes = await conn.run_sync(
                lambda sync: [ix["name"] for ix in inspect(sync).get_indexes("chat_messages")]
            )
        assert "ix_chat_messages_conversation" in indexes
    finally:
        await database.dispose()

    await asyncio.to_thread(downgrade, url, "0002_locations")
    database = Database(url)
    try:
        async with database.engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "chat_messages" not in tables
    finally:
        await database.dispose()
