"""Per-user upload quotas: a count and a byte total over the last day, refused with
``upload_quota_exceeded`` (REST 429 with ``Retry-After``) and a reason."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import update

from server.db import Database
from server.errors import QuotaExceeded
from server.settings import UploadSettings
from server.uploads import service
from server.uploads.models import Upload
from server.uploads.storage import LocalStorage
from server.users.models import utcnow
from tests.conftest import Stack
from tests.support.db import a_user


async def _create(
    db: Database, local: LocalStorage, limits: UploadSettings, user_id: str, size: int = 1000
) -> str:
    async with db.session() as session:
        upload, _ = await service.create_upload(
            session, local, limits, user_id=user_id, content_type="image/jpeg", size=size
        )
    return upload.key


async def test_the_daily_count_is_per_user_and_counts_unused_tickets(
    db: Database, local: LocalStorage
) -> None:
    limits = UploadSettings(daily_uploads=3)
    me, other = await a_user(db), await a_user(db)
    for _ in range(3):
        await _create(db, local, limits, me)  # never PUT: they count all the same
    with pytest.raises(QuotaExceeded) as refused:
        await _create(db, local, limits, me)
    assert refused.value.code == "upload_quota_exceeded" and refused.value.status == 429
    assert "at most 3 uploads a day" in refused.value.message
    assert 86_000 < refused.value.retry_after_s <= 86_400
    await _create(db, local, limits, other)  # another person's quota is untouched


async def test_the_daily_bytes_count_declared_sizes(db: Database, local: LocalStorage) -> None:
    limits = UploadSettings(max_bytes=4000, daily_bytes=10_000)
    me = await a_user(db)
    await _create(db, local, limits, me, size=4000)
    await _create(db, local, limits, me, size=4000)
    with pytest.raises(QuotaExceeded, match="10,000 bytes of uploads"):
        await _create(db, local, limits, me, size=4000)
    await _create(db, local, limits, me, size=2000)  # what still fits is allowed


async def test_uploads_older_than_a_day_no_longer_count(db: Database, local: LocalStorage) -> None:
    limits = UploadSettings(daily_uploads=2)
    me = await a_user(db)
    first = await _create(db, local, limits, me)
    await _create(db, local, limits, me)
    async with db.session() as session:
        await session.execute(
            update(Upload).where(Upload.key == first)
            .values(created_at=utcnow() - timedelta(days=1, minutes=1))
        )
    await _create(db, local, limits, me)


def test_quota_settings_must_allow_one_largest_upload() -> None:
    with pytest.raises(ValidationError, match="daily_bytes"):
        UploadSettings(max_bytes=10_000, daily_bytes=9_999)
    with pytest.raises(ValidationError, match="unused_ttl_s"):
        UploadSettings(url_ttl_s=600, unused_ttl_s=300)
    with pytest.raises(ValidationError):
        UploadSettings(daily_uploads=0)


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
async def test_rest_answers_429_with_the_code_and_retry_after(
    stack: Stack, guest_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The running server reads its settings at each request: a small quota for this test.
    monkeypatch.setattr(stack.settings, "uploads", UploadSettings(daily_uploads=1))
    body = {"content_type": "image/jpeg", "size": 100}
    auth = {"Authorization": f"Bearer {guest_token}"}
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        assert (await http.post("/api/v1/uploads", json=body, headers=auth)).status_code == 201
        refused = await http.post("/api/v1/uploads", json=body, headers=auth)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "upload_quota_exceeded"
    assert "at most 1 upload a day" in error["message"]
    assert 86_000 < int(refused.headers["Retry-After"]) <= 86_400
