"""The head's file round-trips with its novelty model, and novelty means distance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.vision.errors import ModelIntegrityError
from server.vision.head import Head


def _head(novelty: bool) -> Head:
    rng = np.random.default_rng(0)
    dims, classes = 6, ["a", "b"]
    projection = np.eye(dims, 2, dtype=np.float32)
    centroids = np.array([[0, 0], [4, 0]], dtype=np.float32)
    return Head(
        classes=classes,
        mean=np.zeros(dims, dtype=np.float32),
        scale=np.ones(dims, dtype=np.float32),
        layers=[(rng.normal(size=(dims, 2)).astype(np.float32), np.zeros(2, dtype=np.float32))],
        temperature=0.8,
        novelty=(projection, centroids, 2.0) if novelty else None,
    )


def test_novelty_is_the_distance_to_the_nearest_centre_over_the_threshold(tmp_path: Path) -> None:
    head = _head(novelty=True)
    head.save(tmp_path / "h.npz")
    loaded = Head.load(tmp_path / "h.npz")
    x = np.zeros((3, 6), dtype=np.float32)
    x[1, 0] = 3.0  # 1 from the second centre
    x[2, 1] = 5.0  # 5 from the first, the nearer one
    assert loaded.novelty(x) == pytest.approx([0.0, 0.5, 2.5])
    assert loaded.temperature == pytest.approx(0.8)
    assert np.allclose(loaded.logits(x), head.logits(x))


def test_a_head_without_novelty_claims_none(tmp_path: Path) -> None:
    head = _head(novelty=False)
    head.save(tmp_path / "h.npz")
    loaded = Head.load(tmp_path / "h.npz")
    assert loaded.novelty(np.ones((2, 6), dtype=np.float32)).tolist() == [0.0, 0.0]
    with pytest.raises(ModelIntegrityError):
        loaded.distances(np.ones((1, 6), dtype=np.float32))
