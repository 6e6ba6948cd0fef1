"""The splits: deterministic, near-duplicates kept together, TrashNet's holdout as it was."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from server.vision.dataset import (
    HOLDOUT_FRACTION,
    Sample,
    difference_hash,
    list_samples,
    split,
    split_id,
    three_way_split,
)


def _photo(path: Path, seed: int, size: tuple[int, int] = (64, 48)) -> None:
    rng = np.random.default_rng(seed)
    # Smooth random shapes rather than white noise, so that resizing keeps the picture.
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize(size, Image.Resampling.BICUBIC).save(path, quality=90)


def _folder(root: Path, label: str, n: int, offset: int) -> None:
    folder = root / label
    folder.mkdir(parents=True)
    for i in range(n):
        _photo(folder / f"{label}-{i:03d}.jpg", offset + i)


def test_resized_copy_has_nearly_the_same_hash_and_other_photos_do_not(tmp_path: Path) -> None:
    _photo(tmp_path / "a.jpg", 1, (256, 192))
    _photo(tmp_path / "b.jpg", 2, (256, 192))
    with Image.open(tmp_path / "a.jpg") as image:
        image.resize((128, 96)).save(tmp_path / "a_small.jpg", quality=60)
    a, copy, b = (difference_hash(tmp_path / n) for n in ("a.jpg", "a_small.jpg", "b.jpg"))
    assert bin(a ^ copy).count("1") <= 3
    assert bin(a ^ b).count("1") > 10


def test_three_way_split_is_stable_proportional_and_keeps_copies_together(tmp_path: Path) -> None:
    _folder(tmp_path, "battery", 60, 0)
    _folder(tmp_path, "wood", 40, 1000)
    # Copies of one photo under other names: they must land in one part.
    original = tmp_path / "battery" / "battery-000.jpg"
    with Image.open(original) as image:
        for i in range(3):
            image.resize((48 + 4 * i, 36 + 3 * i)).save(tmp_path / "battery" / f"copy-{i}.jpg")
    samples = list_samples(tmp_path)
    parts = three_way_split(samples)
    assert parts == three_way_split(list(reversed(samples)))
    assert len({parts[p] for p in tmp_path.glob("battery/copy-*.jpg")} | {parts[original]}) == 1
    for label, n in (("battery", 63), ("wood", 40)):
        counts = Counter(q for p, q in parts.items() if p.parent.name == label)
        assert set(counts) == {"train", "tune", "holdout"}
        assert abs(counts["holdout"] - HOLDOUT_FRACTION * n) <= 4
    assert split_id(parts, tmp_path) == split_id(three_way_split(samples), tmp_path)
    assert split_id(parts, tmp_path) != split_id(parts, tmp_path, "tune")


def test_trashnet_holdout_contains_the_first_split_unchanged(tmp_path: Path) -> None:
    _folder(tmp_path, "glass", 30, 0)
    samples: list[Sample] = list_samples(tmp_path)
    parts = three_way_split(samples, trashnet=True)
    validation = {s.path for s in split(samples)[1]}
    assert {p for p, q in parts.items() if q == "holdout"} >= validation
    assert Counter(parts.values())["tune"] > 0
