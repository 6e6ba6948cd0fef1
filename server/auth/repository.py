"""Queries on linked identities. Never commits: the caller's ``Database.session()`` does."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.models import Identity
from server.users.models import User, utcnow


async def find_user(session: AsyncSession, provider: str, subject: str) -> User | None:
    return await session.scalar(
        select(User)
        .join(Identity, Identity.user_id == User.id)
        .where(Identity.provider == provider, Identity.provider_user_id == subject)
    )


async def user_for_identity(
    session: AsyncSession, provider: str, subject: str, display_name: str | None
) -> User:
    """The user linked to (provider, subject), created with the link on first sign-in."""
    user = await find_user(session, provider, subject)
    if user is None:
        try:
            # A savepoint, so that losing a race with a concurrent first sign-in of the same
            # person (the unique constraint fires) leaves the outer transaction usable.
            async with session.begin_nested():
                user = User(is_guest=False, display_name=(display_name or None))
                session.add(user)
                await session.flush()
                session.add(Identity(user_id=user.id, provider=provider, provider_user_id=subject))
                await session.flush()
            return user
        except IntegrityError:
            user = await find_user(session, provider, subject)
            if user is None:
                raise
    identity = await session.scalar(
        select(Identity).where(Identity.provider == provider, Identity.provider_user_id == subject)
    )
    if identity is not None:
        identity.last_login_at = utcnow()
    return user
