"""Persisted chat memory: one row per message of a follow-up conversation."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base


def _now() -> datetime:
    return datetime.now(UTC)


class ChatMessage(Base):
    """A question or an answer. A conversation is the rows sharing (user, session, scan).

    ``scan_id`` is null for questions asked outside any scan (session-level chat). The item and
    rule ids an answer was grounded in are kept so a later turn can resolve "it" to the item
    under discussion without the person naming it again.
    """

    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[str] = mapped_column(String(64))
    scan_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    item_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    rule_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

    __table_args__ = (
        Index("ix_chat_messages_conversation", "user_id", "session_id", "scan_id", "id"),
        Index("ix_chat_messages_user_id", "user_id"),
    )
