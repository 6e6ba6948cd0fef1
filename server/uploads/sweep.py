"""The sweep of abandoned uploads, and the loop that runs it now and then.

What it clears (each step a bounded batch; every step is safe to run in several processes at
once, since each row changes state with one conditional UPDATE and deleting an object twice is
harmless):

1. Uploads never used in time (``uploads.unused_ttl_s`` after their creation): tickets never
   PUT, and files PUT but never scanned. Their rows become ``expired``; a scan of them now
   answers ``upload_not_found``.
2. Staging objects no URL can write any more (the URL has expired): the raw files of expired
   uploads, and the tombstones of used ones. Their rows forget the staging key.
3. Rows of expired and rejected uploads once they are out of the quota window (a day): they
   still count against the quota until then.

Uploads stored before verification existed (``staging_key == key``) that a scan refers to are
verified here, a few per run, replacing the raw file in place with the clean copy; those no
scan refers to are abandoned like any other (step 1).

Where it runs: in each worker process, on the worker's event loop (``workers.tasks``), and in
the embedded server (``server.container``), through :func:`sweep_periodically`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, exists, not_, or_, select, update

from server.db import Database
from server.errors import WasteCoachError
from server.scans.models import Scan
from server.settings import UploadSettings
from server.uploads.models import Upload, UploadStatus
from server.uploads.service import QUOTA_WINDOW, retire_staging, verify
from server.uploads.storage import Storage
from server.users.models import utcnow

log = logging.getLogger(__name__)

#: Rows handled per step and run; the rest waits for the next run.
BATCH = 500
#: Stored-before-verification uploads verified per run (each is a decode).
LEGACY_BATCH = 20


@dataclass(frozen=True, slots=True)
class SweepReport:
    expired: int = 0
    """Uploads not used in time, now ``expired``."""
    staging_cleared: int = 0
    """Staging objects (raw files, tombstones) deleted."""
    forgotten: int = 0
    """Rows of expired or rejected uploads deleted."""
    reverified: int = 0
    """Uploads stored before verification existed, verified in place."""


def _legacy() -> ColumnElement[bool]:
    """Stored before verification existed: the raw file is at the key itself."""
    return Upload.staging_key == Upload.key


async def sweep(db: Database, storage: Storage, limits: UploadSettings) -> SweepReport:
    now = utcnow()
    reverified = await _verify_legacy(db, storage)

    # 1. Not used in time. A scan's first use racing this sees the row expired and cleans up
    #    what it wrote (server.uploads.service.verify).
    scanned = exists().where(Scan.upload_key == Upload.key)
    async with db.session() as session:
        result = await session.execute(
            update(Upload)
            .where(
                Upload.status == UploadStatus.PENDING.value,
                Upload.created_at < now - timedelta(seconds=limits.unused_ttl_s),
                # (staging_key is never NULL on a pending row; spelled out all the same, since
                # NOT over a NULL comparison would skip the row)
                or_(Upload.staging_key.is_(None), not_(_legacy()), not_(scanned)),
            )
            .values(status=UploadStatus.EXPIRED.value)
            .execution_options(synchronize_session=False)
        )
        expired = int(getattr(result, "rowcount", 0) or 0)

    # 2. Staging objects whose URL has expired, of settled uploads.
    async with db.session() as session:
        settled = list(
            await session.scalars(
                select(Upload)
                .where(
                    Upload.staging_key.is_not(None),
                    Upload.status != UploadStatus.PENDING.value,
                    Upload.expires_at < now,
                )
                .limit(BATCH)
            )
        )
    cleared = 0
    for upload in settled:
        cleared += await retire_staging(
            db, storage, upload, ready=upload.status == UploadStatus.READY
        )

    # 3. Rows that no longer count against a quota.
    async with db.session() as session:
        result = await session.execute(
            delete(Upload)
            .where(
                Upload.status.in_([UploadStatus.EXPIRED.value, UploadStatus.REJECTED.value]),
                Upload.staging_key.is_(None),
                Upload.created_at < now - QUOTA_WINDOW,
            )
            .execution_options(synchronize_session=False)
        )
        forgotten = int(getattr(result, "rowcount", 0) or 0)
    report = SweepReport(expired, cleared, forgotten, reverified)
    if report != SweepReport():
        log.info("upload sweep: %s", report)
    return report


async def _verify_legacy(db: Database, storage: Storage) -> int:
    async with db.session() as session:
        legacy = list(
            await session.scalars(
                select(Upload)
                .where(
                    Upload.status == UploadStatus.PENDING.value,
                    _legacy(),
                    exists().where(Scan.upload_key == Upload.key),
                )
                .limit(LEGACY_BATCH)
            )
        )
    for upload in legacy:
        try:
            await verify(db, storage, upload)
        except WasteCoachError as exc:  # rejected, or its file is gone: the row says so now
            log.info("upload %s, stored before verification: %s", upload.key, exc.message)
        except Exception as exc:  # storage refusing this one object must not stop the sweep
            log.warning("upload %s could not be verified: %s", upload.key, exc)
    return len(legacy)


async def sweep_periodically(
    db: Database,
    storage: Storage,
    limits: UploadSettings,
    *,
    first_delay_s: float | None = None,
) -> None:
    """Sweep every ``limits.sweep_interval_s`` until cancelled. The first run comes after a
    random part of one interval (``first_delay_s`` to choose), and each next one within ±10 % of
    the interval, so that worker processes started together do not sweep in step. A failed run
    (the database or storage away) is logged and the next one tries again."""
    interval = limits.sweep_interval_s
    delay = random.uniform(0, interval) if first_delay_s is None else first_delay_s
    while True:
        await asyncio.sleep(delay)
        try:
            await sweep(db, storage, limits)
        except Exception:
            log.warning("upload sweep failed; next try in about %.0f s", interval, exc_info=True)
        delay = interval * random.uniform(0.9, 1.1)
