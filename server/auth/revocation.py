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
import weakref

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
        async with asyncio.timeout(_CHECK_TIMEOUT_S), db.session() as session:
            found = await session.scalar(select(User.id).where(User.id == claims.user_id))
    except Exception as exc:
        _unreachable(exc, when_unreachable)
        return
    if found is None:
        raise AuthError(ACCOUNT_GONE)


async def ensure_account_still_exists(db: Database, claims: Claims) -> None:
    """The keep-alive's check of an open session (see :func:`ensure_account_exists`, with a
    database that is away letting it through): the same answer, asked together with every
    other keep-alive waiting at that moment.

    Every open session asks once per keep-alive interval; at 10,000 sessions one query each is
    hundreds of queries a second on an otherwise idle server. Checks that arrive while a query
    is running wait for the next one, which asks for all of their accounts at once. Nothing is
    cached: each answer comes from a query that started after the check was asked, so a
    deletion through another process is seen as soon as it would be one query at a time.
    """
    batch = _batches.get(db)
    if batch is None:
        batch = _batches[db] = _Batch(db)
    try:
        found = await batch.exists(claims.user_id)
    except Exception as exc:
        _unreachable(exc, "a keep-alive")
        return
    if not found:
        raise AuthError(ACCOUNT_GONE)


def _unreachable(exc: Exception, when_unreachable: str | None) -> None:
    """A failed check: a database that is away lets the token through when the caller said
    what the check was for; anything else propagates."""
    if when_unreachable is None or not database_unavailable(exc):
        raise exc
    log.warning("could not check the account for %s: %s", when_unreachable, type(exc).__name__)


_CHECK_TIMEOUT_S = 3
#: Accounts per query: well under every database's limit on bound parameters.
_CHUNK = 500


class _Batch:
    """The keep-alive checks of one database waiting for an answer, and the task asking."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.waiting: dict[str, list[asyncio.Future[bool]]] = {}
        self.asking: asyncio.Task[None] | None = None

    async def exists(self, user_id: str) -> bool:
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(user_id, []).append(answer)
        if self.asking is None or self.asking.done():
            self.asking = asyncio.create_task(self._ask(), name="account-checks")
        return await answer

    async def _ask(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting, {}
            try:
                found = await self._existing(list(batch))
            except Exception as exc:  # the database away, or a bug: each waiter decides
                _answer(batch, exc)
                continue
            except BaseException:  # cancelled (the loop closing): no waiter is left hanging
                stopped = RuntimeError("the account check was stopped")
                _answer(batch, stopped)
                _answer(self.waiting, stopped)
                self.waiting = {}
                raise
            for user_id, answers in batch.items():
                for answer in answers:
                    if not answer.done():  # (a waiter cancelled, its connection gone)
                        answer.set_result(user_id in found)

    async def _existing(self, user_ids: list[str]) -> set[str]:
        found: set[str] = set()
        async with asyncio.timeout(_CHECK_TIMEOUT_S), self.db.session() as session:
            for start in range(0, len(user_ids), _CHUNK):
                chunk = user_ids[start:start + _CHUNK]
                found.update(await session.scalars(select(User.id).where(User.id.in_(chunk))))
        return found


def _answer(batch: dict[str, list[asyncio.Future[bool]]], exc: BaseException) -> None:
    for answers in batch.values():
        for answer in answers:
            if not answer.done():
                answer.set_exception(exc)


#: One batch per database (per process; a database object belongs to one event loop).
_batches: weakref.WeakKeyDictionary[Database, _Batch] = weakref.WeakKeyDictionary()
