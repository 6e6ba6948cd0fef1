"""Fixtures for the knowledge-base tests: the shipped data and a writable copy of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from server.knowledge.kb import DATA_DIR, KnowledgeBase

OFFICIAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "rules" / "official_items.json"


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    """A copy of the data directory a test may break."""
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


@pytest.fixture(scope="session")
def official() -> dict[str, Any]:
    """The Ministry's dictionary (tests may read ../shared; the product never does)."""
    if not OFFICIAL.exists():
        pytest.skip(f"official dictionary not available at {OFFICIAL}")
    data: dict[str, Any] = json.loads(OFFICIAL.read_text(encoding="utf-8"))
    return data
