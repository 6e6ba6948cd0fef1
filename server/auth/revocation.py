"""Whether an access token's account still exists: deleting an account revokes its tokens.

Access tokens are stateless JWTs, good until they expire; erasing an account deletes its user
row, so "the user row exists" is the revocation check (ids are random and never reused). It
runs where a token is accepted: every REST request, ``session.start``, ``auth.refresh``, and
periodically for open WebSocket connections (which are also closed at once when the account is
deleted through this process, see :func:`server.users.service.delete_account`).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from server.auth.tokens import Claims
from server.db import Database, database_unavailable
from server.errors import AuthError
from server.users.models import User

log = logging.getLogger(__name__)

ACCOUNT_GONE = "this account was deleted; its tokens no longer work"


async def ensure_account_exists(
    db: Database, claims: Claims, *, when_unreachable: str | None = None
) -> None:
    """Raise :class:`AuthError` when the token's account was deleted.

    With ``when_unreachable`` (what the check was for, to log), a database that is away (a
    restart, a failover) lets the token through: WebSocket sessions and scans do not need the
    database until an outcome is saved, which waits for it; the signature and expiry were
    checked, and a deletion during the outage is caught at the connection's next keep-alive.
    Without it (REST, which needs the database anyway) the error propagates.
    """
    try:
        # Bounded: an unreachable database (a partition) must not hold a handshake for minutes.
        async with asyncio.timeout(3), db.session() as session:
            found = await session.scalar(select(User.id).where(User.id == claims.user_id))
    except Exception as exc:
        if when_unreachable is None or not database_unavailable(exc):
            raise
        log.warning("could not check the account for %s: %s", when_unreachable,
                    type(exc).__name__)
        return
    if found is None:
        raise AuthError(ACCOUNT_GONE)
