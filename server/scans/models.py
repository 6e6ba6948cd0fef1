"""Scans with their results and per-stage timings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base
from server.users.models import new_id, utcnow

#: An absent value is SQL NULL, not the JSON ``null`` (rows are written with every column).
_JSON = JSON(none_as_null=True)


class Scan(Base):
    __tablename__ = "scans"
    __table_args__ = (UniqueConstraint("session_id", "request_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    session_id: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64))
    #: running, completed, cancelled or failed
    status: Mapped[str] = mapped_column(String(16), default="running")
    locale: Mapped[str] = mapped_column(String(8))
    image_kind: Mapped[str] = mapped_column(String(8))
    upload_key: Mapped[str | None] = mapped_column(
        String(200), ForeignKey("uploads.key", ondelete="SET NULL")
    )
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    classification: Mapped[dict[str, Any] | None] = mapped_column(_JSON)
    coaching_text: Mapped[str | None] = mapped_column(Text)
    rule_ids: Mapped[list[str] | None] = mapped_column(_JSON)
    coach_backend: Mapped[str | None] = mapped_column(String(40))
    bins: Mapped[dict[str, Any] | None] = mapped_column(_JSON)
    timings_ms: Mapped[dict[str, float] | None] = mapped_column(_JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(_JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
