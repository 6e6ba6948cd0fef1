"""Queries on users."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from server.users.models import User


async def create_guest(session: AsyncSession) -> User:
    user = User(is_guest=True)
    session.add(user)
    await session.flush()
    return user


async def get(session: AsyncSession, user_id: str) -> User | None:
    return await session.get(User, user_id)
