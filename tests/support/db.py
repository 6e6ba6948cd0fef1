"""Small database helpers shared by tests."""

from __future__ import annotations

from server.db import Database
from server.users.models import User, new_id


async def a_user(db: Database) -> str:
    """A new user row (scans and chats need one: foreign keys)."""
    user_id = new_id()
    async with db.session() as session:
        session.add(User(id=user_id))
    return user_id
