"""The same guarantees on S3 (moto's S3 server, over HTTP as AWS would be): the PUT goes to a
staging key with a write-once condition, the first use stores the clean copy under the final
key and leaves a tombstone where the raw file was."""

from __future__ import annotations

import io
import uuid

import httpx
import pytest
from PIL import Image

from server.db import Database
from server.errors import ImageInvalid, NotFound
from server.settings import UploadSettings
from server.uploads import service
from server.uploads.models import Upload
from server.uploads.storage import S3Storage, UploadTicket
from tests.support.db import a_user
from tests.uploads import photos


@pytest.fixture
async def s3(s3_endpoint: str) -> S3Storage:
    storage = S3Storage(
        bucket=f"wc-uploads-{uuid.uuid4().hex[:8]}", region="ap-northeast-2",
        endpoint_url=s3_endpoint,
    )
    await storage.ensure_bucket()
    return storage


async def _ticket(
    db: Database, s3: S3Storage, user_id: str, body: bytes
) -> tuple[str, UploadTicket]:
    async with db.session() as session:
        upload, ticket = await service.create_upload(
            session, s3, UploadSettings(), user_id=user_id, content_type="image/jpeg",
            size=len(body),
        )
    return upload.key, ticket


async def _put(ticket: UploadTicket, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.put(ticket.url, content=body, headers=ticket.headers)


def _staging(s3: S3Storage, ticket: UploadTicket) -> str:
    path = httpx.URL(ticket.url).path
    return path.removeprefix(f"/{s3.bucket}/")


async def test_the_clean_copy_alone_is_stored_and_the_url_writes_once(
    db: Database, s3: S3Storage
) -> None:
    user_id = await a_user(db)
    body = photos.photo_with_gps()
    key, ticket = await _ticket(db, s3, user_id, body)
    assert ticket.headers["If-None-Match"] == "*"
    assert "if-none-match" in httpx.URL(ticket.url).params["X-Amz-SignedHeaders"]
    assert (await _put(ticket, body)).status_code == 200
    # A second PUT while the raw file waits: S3 refuses it (412), the first file stays.
    second = await _put(ticket, b"X" * len(body))
    assert second.status_code == 412, second.text
    staging = _staging(s3, ticket)
    assert await s3.get(staging, max_bytes=len(body)) == body
    with pytest.raises(NotFound):
        await s3.get(key, max_bytes=len(body))  # nothing at the final key before its use

    await service.prepare_for_scan(db, s3, user_id=user_id, key=key)

    stored = await s3.get(key, max_bytes=1 << 22)
    image = Image.open(io.BytesIO(stored))
    assert image.format == "JPEG" and len(image.getexif()) == 0
    assert photos.CAMERA_MAKE.encode() not in stored
    assert await s3.get(staging, max_bytes=len(body)) == b""  # the tombstone
    # After the use the URL is still refused: the tombstone stands at its key.
    assert (await _put(ticket, body)).status_code == 412
    async with db.session() as session:
        row = await session.get(Upload, key)
    assert row is not None and row.status == "ready" and row.stored_size == len(stored)


async def test_a_non_image_on_s3_is_refused_and_not_kept(db: Database, s3: S3Storage) -> None:
    user_id = await a_user(db)
    key, ticket = await _ticket(db, s3, user_id, photos.HTML)
    assert (await _put(ticket, photos.HTML)).status_code == 200
    with pytest.raises(ImageInvalid, match="not an image"):
        await service.prepare_for_scan(db, s3, user_id=user_id, key=key)
    assert await s3.get(_staging(s3, ticket), max_bytes=1 << 20) == b""
    with pytest.raises(NotFound):
        await s3.get(key, max_bytes=1 << 20)
    # The row remembers why; asking again does not read storage.
    with pytest.raises(ImageInvalid, match="not an image"):
        await service.prepare_for_scan(db, s3, user_id=user_id, key=key)


async def test_two_first_uses_at_once_store_one_clean_copy(db: Database, s3: S3Storage) -> None:
    import asyncio

    user_id = await a_user(db)
    body = photos.photo_with_gps()
    key, ticket = await _ticket(db, s3, user_id, body)
    assert (await _put(ticket, body)).status_code == 200
    results = await asyncio.gather(
        *(service.prepare_for_scan(db, s3, user_id=user_id, key=key) for _ in range(3)),
        return_exceptions=True,
    )
    assert results == [None, None, None]
    stored = await s3.get(key, max_bytes=1 << 22)
    assert Image.open(io.BytesIO(stored)).format == "JPEG"
    assert await s3.get(_staging(s3, ticket), max_bytes=len(body)) == b""
