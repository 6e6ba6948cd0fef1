"""Whether an access token's account still exists: deleting an account revokes its tokens.

Access tokens are stateless JWTs, good until they expire; erasing an account deletes its user
row, so "the user row exists" is the revocation check (ids are random and never reused). It
runs where a token is accepted: every REST request, ``session.start``, ``auth.refresh``, and
periodically for open WebSocket connections (which are also closed at once when the account is
deleted through this process, see :func:`server.users.service.delete_account`).
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from server.auth.tokens import Claims
from server.db import Database
from server.errors import AuthError
from server.users.models import User

ACCOUNT_GONE = "this account was deleted; its tokens no longer work"


async def ensure_account_exists(db: Database, claims: Claims) -> None:
    """Raise :class:`AuthError` when the token's account was deleted."""
    # Bounded: an unreachable database (a partition) must not hold a handshake for minutes.
    async with asyncio.timeout(3), db.session() as session:
        found = await session.scalar(select(User.id).where(User.id == claims.user_id))
    if found is None:
        raise AuthError(ACCOUNT_GONE)
