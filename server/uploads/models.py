"""Uploaded images: one row per pre-signed upload, owned by one user.

An upload's file travels through two object keys. The client PUTs the raw file to
``staging_key`` (the only key any URL we hand out can write). Its first use verifies it, and
stores the re-encoded, metadata-free JPEG under ``key`` (the key the client knows), which no
client can write. ``status`` says where it stands; :mod:`server.uploads.service` has the
details.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base
from server.users.models import utcnow


class UploadStatus(StrEnum):
    #: Ticket issued; the file, once PUT, waits unverified at ``staging_key``.
    PENDING = "pending"
    #: Verified; the clean copy is at ``key``.
    READY = "ready"
    #: Not a usable image; nothing of it is kept. ``reject_message`` says why.
    REJECTED = "rejected"
    #: Not used in time (never PUT, or never scanned): swept.
    EXPIRED = "expired"


class Upload(Base):
    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_status_created_at", "status", "created_at"),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    #: What the client declared; the stored copy is always a JPEG.
    content_type: Mapped[str] = mapped_column(String(40))
    #: The exact size of the PUT the ticket allows (what quotas count).
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: When the PUT URL expires.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default=UploadStatus.PENDING.value)
    #: Where the raw file is PUT; NULL once nothing can be there any more (deleted, and no
    #: valid URL can write it again). Uploads stored before verification existed have their
    #: raw file at ``key`` itself, and ``staging_key == key`` until they are verified.
    staging_key: Mapped[str | None] = mapped_column(String(200))
    #: Size of the clean copy, once verified.
    stored_size: Mapped[int | None] = mapped_column(BigInteger)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reject_message: Mapped[str | None] = mapped_column(String(300))
