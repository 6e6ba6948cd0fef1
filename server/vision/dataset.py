"""Folder-per-class image sets and the deterministic held-out split of the training script.

The split does not depend on file order, the machine or a random generator: within each class
the files are ranked by the SHA-256 of their name and the first ``VALIDATION_FRACTION`` go to
validation. The training script, the tests and ``wastecoach eval vision --holdout`` therefore
agree on which photos the head never saw.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
VALIDATION_FRACTION = 0.2
SPLIT_SALT = "wastecoach-trashnet-v1"


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
