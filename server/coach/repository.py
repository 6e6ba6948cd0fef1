"""Queries on chat memory. Never commits: the caller's ``Database.session()`` does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.coach.models import ChatMessage
from server.users.models import User

#: Rows kept per conversation; older ones are deleted when a new message is appended. Bounds
#: storage for a chatty client; the prompt uses far fewer (see ``ChatService.history_turns``).
MAX_STORED_MESSAGES = 40


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Role
    content: str
    item_ids: tuple[int, ...] = ()
    rule_ids: tuple[str, ...] = field(default_factory=tuple)


def _conversation(user_id: str, session_id: str, scan_id: str | None) -> list[ColumnElement[bool]]:
    scan_clause = (
        ChatMessage.scan_id.is_(None) if scan_id is None else ChatMessage.scan_id == scan_id
    )
    return [ChatMessage.user_id == user_id, ChatMessage.session_id == session_id, scan_clause]


class ChatRepository:
    def __init__(self, max_stored: int = MAX_STORED_MESSAGES) -> None:
        if max_stored < 2:
            raise ValueError("max_stored must keep at least one question and its answer")
        self.max_stored = max_stored

    async def history(
        self,
        session: AsyncSession,
        *,
        user_id: str,
        session_id: str,
        scan_id: str | None,
        limit: int,
    ) -> list[ChatTurn]:
        """The last ``limit`` messages of the conversation, oldest first."""
        if limit <= 0:
            return []
        rows = (
            await session.scalars(
                select(ChatMessage)
                .where(*_conversation(user_id, session_id, scan_id))
                .order_by(ChatMessage.id.desc())
                .limit(limit)
            )
        ).all()
        return [
            ChatTurn(
                role=Role(row.role),
                content=row.content,
                item_ids=tuple(row.item_ids or ()),
                rule_ids=tuple(row.rule_ids or ()),
            )
            for row in reversed(rows)
        ]

    async def account_exists(self, session: AsyncSession, user_id: str) -> bool:
        """Whether the account exists, holding it until the transaction ends: an erasure
        (which deletes the row) waits for this transaction, or this one sees it gone."""
        found = await session.scalar(
            select(User.id).where(User.id == user_id).with_for_update(key_share=True)
        )
        return found is not None

    async def append(
        self,
        session: AsyncSession,
        *,
        user_id: str,
        session_id: str,
        scan_id: str | None,
        role: Role,
        content: str,
        item_ids: Sequence[int] = (),
        rule_ids: Sequence[str] = (),
    ) -> None:
        """Add a message and prune the conversation down to ``max_stored`` rows."""
        session.add(
            ChatMessage(
                user_id=user_id,
                session_id=session_id,
                scan_id=scan_id,
                role=role.value,
                content=content,
                item_ids=list(item_ids),
                rule_ids=list(rule_ids),
            )
        )
        await session.flush()
        where = _conversation(user_id, session_id, scan_id)
        # The id of the oldest row to keep; everything older in this conversation goes.
        cutoff = await session.scalar(
            select(ChatMessage.id)
            .where(*where)
            .order_by(ChatMessage.id.desc())
            .offset(self.max_stored - 1)
            .limit(1)
        )
        if cutoff is not None:
            await session.execute(delete(ChatMessage).where(*where, ChatMessage.id < cutoff))
