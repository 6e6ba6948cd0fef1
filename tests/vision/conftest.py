"""Fixtures of the vision tests.

The TrashNet photos in ``../shared/data/trashnet`` are real inputs: tests that need them skip
(with the reason) where that folder is absent. ``validation_samples`` are the photos of the
training script's held-out split, which the head never saw.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from server.vision.dataset import Sample, list_samples, split
from server.vision.embedded import EmbeddedClassifier

TRASHNET = Path(__file__).resolve().parents[3] / "shared" / "data" / "trashnet"


@pytest.fixture(scope="session")
def trashnet_dir() -> Path:
    if not TRASHNET.is_dir():
        pytest.skip(f"the TrashNet photos are not at {TRASHNET} (../shared/data is absent)")
    return TRASHNET


@pytest.fixture(scope="session")
def validation_samples(trashnet_dir: Path) -> list[Sample]:
    return split(list_samples(trashnet_dir))[1]


@pytest.fixture(scope="session")
def embedded() -> EmbeddedClassifier:
    classifier = EmbeddedClassifier()
    classifier.load()
    return classifier


def jpeg_bytes(image: Image.Image, **save: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", **save)
    return out.getvalue()
