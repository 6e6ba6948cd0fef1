"""Fixtures of the upload tests: SQLite with the migrations applied, local storage."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.migrate import upgrade
from server.uploads.storage import LocalStorage


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """tests/conftest.py's ``db`` opens it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'uploads.db'}"
    upgrade(url)
    return url


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "objects", public_url="http://127.0.0.1:9", secret=b"k" * 32)
