"""Creating uploads and resolving an upload key to image bytes for a given user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from protocol.messages import ErrorCode
from server.errors import Forbidden, InvalidInput, NotFound
from server.settings import UploadSettings
from server.uploads.models import Upload
from server.uploads.storage import Storage, UploadTicket

_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


def key_prefix(user_id: str) -> str:
    return f"u/{user_id}/"


async def create_upload(
    session: AsyncSession,
    storage: Storage,
    limits: UploadSettings,
    *,
    user_id: str,
    content_type: str,
    size: int,
) -> tuple[Upload, UploadTicket]:
    if content_type not in limits.content_types:
        raise InvalidInput(
            f"content type {content_type!r} is not accepted; use one of "
            + ", ".join(limits.content_types)
        )
    if size <= 0 or size > limits.max_bytes:
        raise InvalidInput(f"size must be between 1 and {limits.max_bytes} bytes")
    key = f"{key_prefix(user_id)}{uuid.uuid4().hex}.{_EXTENSIONS[content_type]}"
    ticket = await storage.presign_put(
        key, content_type=content_type, size=size, ttl_s=limits.url_ttl_s
    )
    upload = Upload(
        key=key,
        user_id=user_id,
        content_type=content_type,
        size=size,
        expires_at=datetime.now(UTC) + timedelta(seconds=limits.url_ttl_s),
    )
    session.add(upload)
    await session.flush()
    return upload, ticket


async def owned_upload(session: AsyncSession, *, user_id: str, key: str) -> Upload:
    """The upload row for ``key`` if it belongs to ``user_id``."""
    upload = await session.get(Upload, key)
    if upload is None:
        raise NotFound(f"upload {key!r} does not exist", code=ErrorCode.UPLOAD_NOT_FOUND)
    if upload.user_id != user_id:
        # Same answer whether the key is someone else's or made up would hide existence, but
        # a client needs to know it used the wrong account; the key itself reveals nothing.
        raise Forbidden(f"upload {key!r} belongs to another user", code=ErrorCode.UPLOAD_FORBIDDEN)
    return upload
