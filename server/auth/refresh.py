"""Refresh tokens: opaque, stored hashed, rotated on every use, revoked as a family.

A refresh token is 256 random bits; the database holds only its SHA-256, so a leaked table
cannot be replayed. Exchanging one marks it used and issues its successor in the same family.
A used token presented again means two parties hold it (the thief or the owner is replaying
it), and we cannot tell which, so every token of that family is revoked and both must sign in
again. Logout revokes the family of the token it is given.

Except within a short grace window after the first use (``accounts.refresh_grace_s``, 5 s):
an app that refreshes from two places at once (two tabs, a retry after a timeout) presents the
same token twice in the same moment, and revoking the family would sign out the winner of that
race too. A token presented again within the window gets a successor of its own in the same
family; presented later, it revokes the family as before.

These functions never commit: a reuse is reported as a result rather than raised, so the caller
can commit the family's revocation before refusing the request.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.models import RefreshToken
from server.users.models import new_id, utcnow

log = logging.getLogger(__name__)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedRefresh:
    token: str
    user_id: str
    family_id: str
    expires_in: int


class Refusal(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REUSED = "reused"


async def issue(
    session: AsyncSession, *, user_id: str, ttl_s: int, family_id: str | None = None
) -> IssuedRefresh:
    token = secrets.token_urlsafe(32)
    family = family_id or new_id()
    now = utcnow()
    session.add(
        RefreshToken(
            token_hash=token_hash(token),
            family_id=family,
            user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
    )
    await session.flush()
    return IssuedRefresh(token, user_id, family, ttl_s)


async def rotate(
    session: AsyncSession, token: str, *, ttl_s: int, grace_s: float = 0.0
) -> IssuedRefresh | Refusal:
    """Spend ``token`` and issue its successor, or say why it cannot be spent.

    ``grace_s``: how long after its first use the token may be spent again without being
    taken for a copy (see the module's docstring).
    """
    digest = token_hash(token)
    now = utcnow()
    # One conditional UPDATE decides who spends the token: of two concurrent requests with
    # the same token, exactly one matches ``used_at IS NULL``; the other is a reuse.
    spent = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == digest,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(used_at=now)
    )
    row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest))
    if row is None:
        return Refusal.UNKNOWN
    if spent.rowcount == 1:  # type: ignore[attr-defined]
        return await issue(session, user_id=row.user_id, ttl_s=ttl_s, family_id=row.family_id)
    if row.revoked_at is not None:
        return Refusal.REVOKED
    if row.used_at is not None:
        # Decided in SQL, like the spend: SQLite hands back times without an offset.
        concurrent = grace_s > 0 and await session.scalar(
            select(RefreshToken.id).where(
                RefreshToken.id == row.id,
                RefreshToken.used_at >= now - timedelta(seconds=grace_s),
                RefreshToken.expires_at > now,
            )
        )
        if concurrent:
            log.info("refresh token spent again within the grace window; successor issued")
            return await issue(session, user_id=row.user_id, ttl_s=ttl_s, family_id=row.family_id)
        await revoke_family(session, row.family_id)
        return Refusal.REUSED
    return Refusal.EXPIRED


async def revoke_family(session: AsyncSession, family_id: str) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def revoke(session: AsyncSession, token: str) -> bool:
    """Logout: revoke the family of ``token``. Returns whether the token was known."""
    family_id = await session.scalar(
        select(RefreshToken.family_id).where(RefreshToken.token_hash == token_hash(token))
    )
    if family_id is None:
        return False
    await revoke_family(session, family_id)
    return True
