"""Uploads: creating them, verifying them at first use, and resolving a key for its owner.

What a client uploads is never what is stored. The flow, the same for S3 and the local folder:

1. ``create_upload`` hands out a PUT URL for a *staging* key (``staging/<user>/<id>``) and
   tells the client the *final* key (``u/<user>/<id>.jpg``). No URL we hand out can write a
   final key.
2. The client PUTs the raw file to the staging key, once: the URL carries a write-once
   condition (see :mod:`server.uploads.storage`).
3. Its first use (``scan.start`` naming the key: :func:`prepare_for_scan`) reads the staging
   object, decodes it with the bounded decoder (:func:`server.vision.images.decode_image`:
   format from the bytes, pixel caps from the header, decodes capped per process), and writes
   the re-encoded JPEG (pixels only: no EXIF, GPS, XMP, ICC or comments) under the final key.
   The raw file is then overwritten with an empty *tombstone*, which keeps the still-valid URL
   refused, and deleted once the URL has expired. Bytes that are not a usable image are refused
   with ``image_invalid`` and the reason, and nothing of them is kept.
4. Later uses read the clean copy; the row says it is ready.

Why at first use, and in the API process: S3 is written by the client directly, so nothing of
ours runs when the PUT completes; the first use is the first moment the server must know. The
session service already checks the key there, and the person waits for the answer anyway.
(Verifying in the scan's worker would need the pipeline to import the vision domain, which the
import contracts forbid.)

Uploads not used in time, and the leftovers of used ones, are cleared by :mod:`.sweep`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from protocol.messages import ErrorCode
from server.db import Database
from server.errors import Forbidden, ImageInvalid, InvalidInput, NotFound, QuotaExceeded
from server.settings import UploadSettings
from server.uploads.models import Upload, UploadStatus
from server.uploads.storage import Storage, UploadTicket
from server.users.models import User, utcnow
from server.vision.images import decode_image

log = logging.getLogger(__name__)

#: What every stored upload is, whatever was sent.
STORED_CONTENT_TYPE = "image/jpeg"
#: What stands at a staging key once its file was used: a PUT there is refused while the URL
#: lives, and no client upload is ever empty (sizes start at 1).
TOMBSTONE = b""
#: The window of the per-user quotas.
QUOTA_WINDOW = timedelta(days=1)


def key_prefix(user_id: str) -> str:
    return f"u/{user_id}/"


def staging_prefix(user_id: str) -> str:
    return f"staging/{user_id}/"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite


# --------------------------------------------------------------------------- creating


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
    await _check_quota(session, limits, user_id=user_id, size=size)
    name = uuid.uuid4().hex
    staging_key = f"{staging_prefix(user_id)}{name}"
    ticket = await storage.presign_put(
        staging_key, content_type=content_type, size=size, ttl_s=limits.url_ttl_s
    )
    upload = Upload(
        key=f"{key_prefix(user_id)}{name}.jpg",
        user_id=user_id,
        content_type=content_type,
        size=size,
        expires_at=datetime.now(UTC) + timedelta(seconds=limits.url_ttl_s),
        status=UploadStatus.PENDING.value,
        staging_key=staging_key,
    )
    session.add(upload)
    await session.flush()
    return upload, ticket


async def _check_quota(
    session: AsyncSession, limits: UploadSettings, *, user_id: str, size: int
) -> None:
    """Uploads created in the last day, used or not: their count, and their declared sizes."""
    # One user's uploads are created one at a time (PostgreSQL: the user's row is locked until
    # the commit; SQLite has one writer anyway), so two at once cannot both take the last slot.
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    since = utcnow() - QUOTA_WINDOW
    used = select(
        func.count(), func.coalesce(func.sum(Upload.size), 0), func.min(Upload.created_at)
    ).where(Upload.user_id == user_id, Upload.created_at >= since)
    count, total, oldest = (await session.execute(used)).one()
    if count < limits.daily_uploads and total + size <= limits.daily_bytes:
        return
    wait_s = 60.0
    if oldest is not None:
        wait_s = max(1.0, (_aware(oldest) + QUOTA_WINDOW - utcnow()).total_seconds())
    what = (
        f"{limits.daily_uploads} upload{'s' if limits.daily_uploads != 1 else ''}"
        if count >= limits.daily_uploads
        else f"{limits.daily_bytes:,} bytes of uploads ({int(total):,} used)"
    )
    raise QuotaExceeded(
        f"upload quota reached: at most {what} a day; try again in {wait_s:.0f} s",
        code=ErrorCode.UPLOAD_QUOTA_EXCEEDED,
        retry_after_s=wait_s,
    )


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


# --------------------------------------------------------------------------- first use


async def prepare_for_scan(db: Database, storage: Storage, *, user_id: str, key: str) -> None:
    """Make sure ``key`` is ``user_id``'s and holds a clean image, verifying it on first use.

    Raises ``upload_not_found`` (no such key, not PUT yet, expired unused), ``upload_forbidden``
    (someone else's) or ``image_invalid`` (not a usable image; the message says why). Storage and
    database errors propagate: the caller answers those as retryable."""
    async with db.session() as session:
        upload = await owned_upload(session, user_id=user_id, key=key)
    if upload.status == UploadStatus.PENDING:
        await verify(db, storage, upload)
    else:
        _settled(upload)


def _settled(upload: Upload) -> None:
    """Answer for an upload whose verification is over."""
    if upload.status == UploadStatus.READY:
        return
    if upload.status == UploadStatus.REJECTED:
        raise ImageInvalid(upload.reject_message or "The upload is not a usable image.")
    if upload.status == UploadStatus.EXPIRED:
        raise NotFound(
            f"upload {upload.key!r} expired before it was used; upload the photo again",
            code=ErrorCode.UPLOAD_NOT_FOUND,
        )
    raise _not_received(upload.key)


def _not_received(key: str) -> NotFound:
    return NotFound(
        f"upload {key!r} has not been received yet; PUT the file first",
        code=ErrorCode.UPLOAD_NOT_FOUND,
    )


def _clean_copy(raw: bytes) -> bytes:
    """The stored form of an uploaded file (``ImageRejected`` if it is not a usable image)."""
    return decode_image(raw).clean_jpeg()


async def verify(db: Database, storage: Storage, upload: Upload) -> None:
    """Verify a pending upload: its clean copy stored under its key and its row ``ready``, or
    its row ``rejected`` and ``ImageInvalid`` raised. Safe to run twice at once (two sessions
    scanning the same upload, or a use racing the sweep): the row changes once."""
    staging = upload.staging_key
    if staging is None:
        _settled(upload)  # (a pending row always has one; be safe)
        return
    try:
        raw = await storage.get(staging, max_bytes=upload.size)
    except NotFound:  # (its message would name the staging key, which is ours alone)
        raise _not_received(upload.key) from None
    if raw == TOMBSTONE:
        # Another use verified it between our read of the row and this one.
        await _reread_and_settle(db, upload.key)
        return
    try:
        clean = await asyncio.to_thread(_clean_copy, raw)
    except ImageInvalid as exc:
        if await _conclude(db, upload, UploadStatus.REJECTED, reject_message=exc.message):
            await retire_staging(db, storage, upload, ready=False)
            raise
        await _reread_and_settle(db, upload.key)
        return
    await storage.put(upload.key, clean, content_type=STORED_CONTENT_TYPE)
    if await _conclude(db, upload, UploadStatus.READY, stored_size=len(clean)):
        await retire_staging(db, storage, upload, ready=True)
        return
    # Lost a race. Another use stored the same clean copy (fine), or the sweep expired the
    # upload meanwhile: then what was just written must not stay.
    async with db.session() as session:
        current = await session.get(Upload, upload.key)
    if current is None or current.status != UploadStatus.READY:
        await storage.delete(upload.key)
    if current is None:
        _settled(upload)  # (deleted with its account meanwhile: not found)
        return
    _settled(current)


async def _reread_and_settle(db: Database, key: str) -> None:
    async with db.session() as session:
        current = await session.get(Upload, key)
    if current is None:
        raise NotFound(f"upload {key!r} does not exist", code=ErrorCode.UPLOAD_NOT_FOUND)
    _settled(current)


async def _conclude(db: Database, upload: Upload, status: UploadStatus, **values: object) -> bool:
    """Move a pending upload to ``status``; False if it was no longer pending."""
    async with db.session() as session:
        result = await session.execute(
            update(Upload)
            .where(Upload.key == upload.key, Upload.status == UploadStatus.PENDING.value)
            .values(status=status.value, verified_at=utcnow(), **values)
        )
    return bool(getattr(result, "rowcount", 0) == 1)


async def retire_staging(db: Database, storage: Storage, upload: Upload, *, ready: bool) -> bool:
    """Make the raw file go, once its upload is settled (ready, rejected or expired); True once
    the row has forgotten its staging key.

    While the PUT URL is valid the raw file is replaced by the tombstone, so that the URL stays
    refused; once it has expired the staging object is deleted and the row forgets the key.
    A failure here fails nothing: the sweep retries (and the raw file is never read again)."""
    staging = upload.staging_key
    if staging is None:
        return True
    try:
        if staging == upload.key:
            # Stored before verification existed: the raw file was the object at the key. The
            # clean copy replaced it in place; a rejected one goes.
            if not ready:
                await storage.delete(staging)
        elif _aware(upload.expires_at) > utcnow():
            await storage.put(staging, TOMBSTONE, content_type="application/octet-stream")
            return False
        else:
            await storage.delete(staging)
        async with db.session() as session:
            await session.execute(
                update(Upload)
                .where(Upload.key == upload.key, Upload.staging_key == staging)
                .values(staging_key=None)
            )
    except Exception as exc:  # a storage or database hiccup: the sweep comes back to it
        log.warning("upload %s: could not clear its staging object: %s", upload.key, exc)
        return False
    return True
