"""The data folder is owner-only (0700), and so are the SQLite database, its WAL and
shared-memory files, and the generated signing key (0600), checked with ``os.stat``.

Run under the usual umask (022), with which SQLite and ``mkdir`` would otherwise leave
everything readable by every local user.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from server.app import create_app
from server.container import jwt_secret
from server.db import Database
from server.files import private_dir
from server.settings import Settings
from tests.conftest import TEST_STAGES

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_embedded_start_leaves_owner_only_files(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "wastecoach"
    app = create_app(Settings(data_dir=data, stages_factory=TEST_STAGES))
    async with app.router.lifespan_context(app):
        async with app.state.container.db.session() as session:
            await session.execute(text("SELECT count(*) FROM users"))
        db = data / "wastecoach.db"
        # While the server runs, SQLite's WAL and shared-memory files exist beside the database.
        files = [db, data / "wastecoach.db-wal", data / "wastecoach.db-shm", data / "jwt-secret"]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert mode(data) == 0o700


async def test_an_older_install_is_made_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "old"
    data.mkdir(mode=0o755)
    db = data / "wastecoach.db"
    # What an earlier version left: a database in WAL mode, open files, and a readable key.
    old = sqlite3.connect(db)
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE t (x)")
    old.execute("INSERT INTO t VALUES (1)")
    old.commit()
    (data / "jwt-secret").write_text("an-old-secret")
    sidecars = [data / "wastecoach.db-wal", data / "wastecoach.db-shm"]
    assert all(mode(f) == 0o644 for f in [db, *sidecars, data / "jwt-secret"])

    settings = Settings(data_dir=data)
    private_dir(data)  # what embedded start-up does first
    database = Database(settings.sqlalchemy_url)
    try:
        async with database.session() as session:
            assert await session.scalar(text("SELECT x FROM t")) == 1
    finally:
        await database.dispose()
        old.close()
    assert jwt_secret(settings) == "an-old-secret"
    assert mode(data) == 0o700
    for f in [db, *[s for s in sidecars if s.exists()], data / "jwt-secret"]:
        assert mode(f) == 0o600, f
