"""Folder-per-class image sets and the deterministic splits of the training script.

Two splits, neither depending on file order, the machine or a random generator:

* TrashNet (:func:`split`), as since the first head: within each class the files are ranked
  by the SHA-256 of their name and the first ``VALIDATION_FRACTION`` are held out.
* Every photo set (:func:`three_way_split`): ``holdout`` photos are never trained on nor
  tuned against (they are only reported), ``tune`` photos choose hyper-parameters, the
  temperature and the thresholds, ``train`` photos fit the head. Near-duplicates (the same
  photo resized, recompressed or barely cropped: a difference hash within
  ``NEAR_DUPLICATE_BITS`` bits) form one group, and a group goes to one part as a whole, ranked
  by the salted SHA-256 of its members' content, so a copy of a held-out photo cannot teach
  the head its answer. For TrashNet the holdout is :func:`split`'s validation part, kept as
  it was.

The training script, the tests and ``wastecoach eval vision --holdout`` therefore agree on
which photos the head never saw.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
VALIDATION_FRACTION = 0.2
SPLIT_SALT = "wastecoach-trashnet-v1"
HOLDOUT_FRACTION = 0.15
TUNE_FRACTION = 0.15
GROUP_SALT = "wastecoach-photos-v2"
#: Difference hashes this close (of 64 bits) are one photo for the split. Resized and
#: recompressed copies differ by 0–3 bits. At 5 bits, chaining (a~b, b~c) joined 62 distinct
#: laptop batteries on white backgrounds into one group; at 3 the largest group is 13.
NEAR_DUPLICATE_BITS = 3

Part = Literal["train", "tune", "holdout"]


@dataclass(frozen=True, slots=True)
class Sample:
    path: Path
    label: str


def list_samples(root: Path) -> list[Sample]:
    """Every image under ``root/<class>/``, sorted by class then file name."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    samples: list[Sample] = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(class_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                samples.append(Sample(path=path, label=class_dir.name))
    return samples


def _rank_key(sample: Sample) -> str:
    return hashlib.sha256(f"{SPLIT_SALT}/{sample.label}/{sample.path.name}".encode()).hexdigest()


def split(
    samples: list[Sample], fraction: float = VALIDATION_FRACTION
) -> tuple[list[Sample], list[Sample]]:
    """Stratified (train, validation) split; see the module docstring."""
    by_class: dict[str, list[Sample]] = {}
    for sample in samples:
        by_class.setdefault(sample.label, []).append(sample)
    train: list[Sample] = []
    validation: list[Sample] = []
    for label in sorted(by_class):
        ranked = sorted(by_class[label], key=_rank_key)
        n_val = math.ceil(len(ranked) * fraction)
        validation.extend(sorted(ranked[:n_val], key=lambda s: s.path.name))
        train.extend(sorted(ranked[n_val:], key=lambda s: s.path.name))
    return train, validation


def difference_hash(path: Path) -> int:
    """64-bit difference hash: which of each pair of neighbouring pixels is brighter, on a
    9 × 8 grey thumbnail. Survives resizing and recompression, unlike a content hash."""
    with Image.open(path) as image:
        image.draft("L", (64, 64))  # JPEG: decode at reduced size, much cheaper
        small = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def _near_duplicate_groups(hashes: list[int]) -> list[int]:
    """Group index per photo: union of every pair within ``NEAR_DUPLICATE_BITS`` bits."""
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    values = np.array(hashes, dtype=np.uint64)
    for i in range(len(values)):
        xor = values[i + 1 :] ^ values[i]
        distance = np.unpackbits(xor.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
        for j in np.flatnonzero(distance <= NEAR_DUPLICATE_BITS):
            a, b = find(i), find(i + 1 + int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [find(i) for i in range(len(hashes))]


def _content_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def three_way_split(samples: Iterable[Sample], *, trashnet: bool = False) -> dict[Path, Part]:
    """The part of every photo; see the module docstring.

    ``trashnet``: the set is TrashNet, whose holdout stays :func:`split`'s validation part.
    """
    samples = list(samples)
    holdout: set[Path] = {s.path for s in split(samples)[1]} if trashnet else set()
    parts: dict[Path, Part] = {}
    by_class: dict[str, list[Sample]] = {}
    for sample in samples:
        by_class.setdefault(sample.label, []).append(sample)
    for label in sorted(by_class):
        members = sorted(by_class[label], key=lambda s: s.path.name)
        digests = [_content_digest(s.path) for s in members]
        groups = _near_duplicate_groups([difference_hash(s.path) for s in members])
        # A group is named by its smallest member digest, so adding a photo elsewhere in the
        # folder never moves an existing group.
        group_key: dict[int, str] = {}
        for group, digest in zip(groups, digests, strict=True):
            group_key[group] = min(group_key.get(group, digest), digest)
        rank = sorted(
            group_key,
            key=lambda g: hashlib.sha256(f"{GROUP_SALT}/{label}/{group_key[g]}".encode()).digest(),
        )
        size = {g: groups.count(g) for g in group_key}
        n = len(members)
        if trashnet:
            # Groups touching the fixed holdout go there whole; the rest fill the tune part.
            held = {g for g, s in zip(groups, members, strict=True) if s.path in holdout}
            targets: list[tuple[Part, float]] = [("tune", TUNE_FRACTION * n)]
        else:
            held = set()
            targets = [("holdout", HOLDOUT_FRACTION * n), ("tune", TUNE_FRACTION * n)]
        part_of: dict[int, Part] = {g: "holdout" for g in held}
        filled = 0
        budget = 0.0
        for part, quota in targets:
            budget += quota
            for g in rank:
                if g in part_of or filled >= budget:
                    continue
                part_of[g] = part
                filled += size[g]
        for g in rank:
            part_of.setdefault(g, "train")
        for sample, group in zip(members, groups, strict=True):
            parts[sample.path] = part_of[group]
    return parts


def split_id(parts: dict[Path, Part], root: Path, part: Part = "holdout") -> str:
    """A short fingerprint of one part's file list, recorded with the model it tested."""
    names = sorted(str(p.relative_to(root)) for p, q in parts.items() if q == part)
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
