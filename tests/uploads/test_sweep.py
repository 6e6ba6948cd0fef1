"""The sweep of abandoned uploads (server/uploads/sweep.py), and where it runs: on a worker's
event loop, and in the embedded server."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import update

from server.db import Database
from server.errors import NotFound
from server.migrate import upgrade
from server.pipeline.run import PipelineDeps
from server.scans import repository as scans
from server.settings import UploadSettings
from server.uploads import service
from server.uploads.models import Upload
from server.uploads.storage import LocalStorage
from server.uploads.sweep import sweep
from server.users.models import utcnow
from tests.conftest import Stack
from tests.support.db import a_user
from tests.support.pg import scratch_database
from tests.uploads import photos

LIMITS = UploadSettings()  # unused 3600 s, URL 600 s


@pytest.fixture(scope="module")
def pg_sweep_url() -> Iterator[str]:
    """A PostgreSQL database of this module's own: the sweep's counts see only its rows."""
    with scratch_database("wc_sweep") as url:
        upgrade(url)
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'sweep.db'}"
        upgrade(url)
        return url
    found: str = request.getfixturevalue("pg_sweep_url")
    return found


async def _body() -> AsyncIterator[bytes]:
    yield photos.small_jpeg()


async def _create(db: Database, local: LocalStorage, user_id: str, *, put: bool) -> Upload:
    body = photos.small_jpeg()
    async with db.session() as session:
        upload, _ = await service.create_upload(
            session, local, LIMITS, user_id=user_id, content_type="image/jpeg", size=len(body)
        )
    if put:
        assert upload.staging_key is not None
        await local.write_stream(upload.staging_key, _body(), size=len(body))
    return upload


async def _age(db: Database, key: str, *, created: timedelta, url_left: timedelta) -> None:
    """Make the upload ``created`` old, its URL valid ``url_left`` more (negative: expired)."""
    now = utcnow()
    async with db.session() as session:
        await session.execute(
            update(Upload).where(Upload.key == key)
            .values(created_at=now - created, expires_at=now + url_left)
        )


async def _row(db: Database, key: str) -> Upload | None:
    async with db.session() as session:
        return await session.get(Upload, key)


def _exists(local: LocalStorage, key: str | None) -> bool:
    assert key is not None
    return (local.root / key).exists()


async def test_abandoned_uploads_are_swept_and_used_ones_kept(
    db: Database, local: LocalStorage
) -> None:
    me = await a_user(db)
    never_put = await _create(db, local, me, put=False)
    never_scanned = await _create(db, local, me, put=True)
    used = await _create(db, local, me, put=True)
    await service.prepare_for_scan(db, local, user_id=me, key=used.key)
    fresh = await _create(db, local, me, put=True)
    for upload in (never_put, never_scanned, used):
        await _age(db, upload.key, created=timedelta(hours=2), url_left=-timedelta(hours=1))

    report = await sweep(db, local, LIMITS)

    assert report.expired == 2
    # The raw file never scanned, the tombstone of the used one (and nothing for the ticket
    # never PUT, whose row forgets its staging key all the same).
    assert report.staging_cleared == 3
    assert not _exists(local, never_scanned.staging_key) and not _exists(local, used.staging_key)
    for upload in (never_put, never_scanned):
        row = await _row(db, upload.key)
        assert row is not None and row.status == "expired" and row.staging_key is None
    with pytest.raises(NotFound, match="expired before it was used"):
        await service.prepare_for_scan(db, local, user_id=me, key=never_scanned.key)
    # The used upload keeps its clean copy; the fresh one is untouched.
    used_row = await _row(db, used.key)
    assert used_row is not None and used_row.status == "ready" and _exists(local, used.key)
    fresh_row = await _row(db, fresh.key)
    assert fresh_row is not None and fresh_row.status == "pending"
    assert _exists(local, fresh.staging_key)

    # A day on, the expired rows stop counting against the quota and go.
    for upload in (never_put, never_scanned):
        await _age(db, upload.key, created=timedelta(days=1, hours=1), url_left=-timedelta(1))
    report = await sweep(db, local, LIMITS)
    assert report.forgotten == 2
    assert await _row(db, never_put.key) is None and await _row(db, never_scanned.key) is None
    assert await _row(db, used.key) is not None
    assert await sweep(db, local, LIMITS) == type(report)()  # nothing left to do


async def test_a_rejected_upload_leaves_nothing_and_is_forgotten_after_a_day(
    db: Database, local: LocalStorage
) -> None:
    me = await a_user(db)
    async with db.session() as session:
        upload, _ = await service.create_upload(
            session, local, LIMITS, user_id=me, content_type="image/jpeg",
            size=len(photos.HTML),
        )
    assert upload.staging_key is not None

    async def body() -> AsyncIterator[bytes]:
        yield photos.HTML

    await local.write_stream(upload.staging_key, body(), size=len(photos.HTML))
    with pytest.raises(service.ImageInvalid):
        await service.prepare_for_scan(db, local, user_id=me, key=upload.key)
    await _age(db, upload.key, created=timedelta(days=2), url_left=-timedelta(days=2))
    report = await sweep(db, local, LIMITS)
    assert (report.staging_cleared, report.forgotten) == (1, 1)  # the tombstone, the row
    assert await _row(db, upload.key) is None
    assert [p for p in local.root.rglob("*") if p.is_file()] == []


async def test_a_first_use_racing_the_sweep_keeps_nothing(
    db: Database, local: LocalStorage
) -> None:
    me = await a_user(db)
    upload = await _create(db, local, me, put=True)
    stale = await _row(db, upload.key)  # what the first use read: pending
    assert stale is not None
    # Unused for too long (its URL still valid, so the raw file is still there).
    await _age(db, upload.key, created=timedelta(hours=2), url_left=timedelta(minutes=5))
    assert (await sweep(db, local, LIMITS)).expired == 1
    with pytest.raises(NotFound, match="expired"):
        await service.verify(db, local, stale)
    assert not _exists(local, upload.key)  # the clean copy it wrote was taken back


async def test_an_upload_stored_before_verification_is_reencoded_in_place(
    db: Database, local: LocalStorage
) -> None:
    """Rows from before migration 0005: the raw file at the key itself, staging_key == key.
    The one a scan refers to is cleaned in place; the one nothing refers to is abandoned."""
    me = await a_user(db)
    key, unscanned = (f"u/{me}/{uuid.uuid4().hex}.jpg" for _ in range(2))
    raw = photos.photo_with_gps()
    old = utcnow() - timedelta(days=30)
    for each in (key, unscanned):
        await local.put(each, raw, content_type="image/jpeg")
        async with db.session() as session:
            session.add(Upload(key=each, user_id=me, content_type="image/jpeg", size=len(raw),
                               created_at=old, expires_at=old, staging_key=each))
    await scans.record_outcome(
        db, id=uuid.uuid4().hex, user_id=me, session_id="s", request_id="r", status="completed",
        locale="ko", image_kind="key", upload_key=key, finished_at=datetime.now(UTC),
    )

    report = await sweep(db, local, LIMITS)

    assert (report.reverified, report.expired) == (1, 1)
    assert not (local.root / unscanned).exists()
    stored = (local.root / key).read_bytes()
    assert photos.CAMERA_MAKE.encode() not in stored
    assert len(Image.open(io.BytesIO(stored)).getexif()) == 0
    row = await _row(db, key)
    assert row is not None and row.status == "ready" and row.staging_key is None


async def test_the_worker_sweeps_on_its_event_loop(db_url: str, local: LocalStorage) -> None:
    """What ``wastecoach worker`` starts at worker_init (workers/tasks.py), on the worker's own
    loop thread, as in the worker process."""
    from workers import tasks
    from workers.loop import LoopThread

    loop = LoopThread()
    db = Database(db_url)
    try:
        me = await a_user(db)
        abandoned = await _create(db, local, me, put=True)
        await _age(db, abandoned.key, created=timedelta(hours=2), url_left=-timedelta(hours=1))
        await db.dispose()

        async def start() -> Any:
            worker_db = Database(db_url)  # the worker loop's own connections
            deps: Any = PipelineDeps(log=None, db=worker_db, storage=local, stages=None,  # type: ignore[arg-type]
                                     max_image_bytes=1 << 20)
            await tasks.start_sweeper(deps, UploadSettings(sweep_interval_s=5), first_delay_s=0)
            return worker_db

        worker_db = loop.run(start(), timeout=10)
        deadline = time.monotonic() + 10
        while True:
            row = await _row(db, abandoned.key)
            if row is not None and row.status == "expired" and row.staging_key is None:
                break  # (the row expires first, then its staging object goes)
            assert time.monotonic() < deadline, "the worker's sweep did not run"
            await asyncio.sleep(0.1)
        assert not _exists(local, abandoned.staging_key)
    finally:
        loop.run(tasks._stop_sweeper(), timeout=10)
        if "worker_db" in locals():
            loop.run(worker_db.dispose(), timeout=10)
        loop.stop()
        await db.dispose()


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_the_embedded_server_runs_the_sweep(stack: Stack) -> None:
    container: Any = stack.app.state.container  # type: ignore[attr-defined]
    assert container.sweeper is not None and not container.sweeper.done()
