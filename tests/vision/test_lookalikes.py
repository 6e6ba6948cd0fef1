"""Foil, foil dishes and plastic film: the photos a person labelled train classes of their own,
and a head answer for them leads to the right bin and the right question.

Foil and foil dishes (알루미늄 호일, 은박 접시) are general waste; plastic film and wrappers
(비닐류) are vinyl. Both sit in folders named after something else (metal, plastic, trash), so
without their per-photo labels reaching the training script the head learns them as cans,
plastic containers and general waste.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from protocol.messages import Locale
from protocol.streams import Stream
from server.vision.clarify import CLARIFY_BELOW, VisionClarifier, clarification_for
from server.vision.dataset import list_samples, three_way_split
from server.vision.embedded import EmbeddedClassifier, Evidence, interpret
from server.vision.eval import SURE, accepted_streams
from server.vision.labelmap import (
    FOLDERS,
    LOOKALIKE_CLASSES,
    head_class_of,
    load_lookalikes,
    load_photo_streams,
)
from server.vision.manifest import MODELS_DIR, load_manifest
from server.vision.taxonomy import HEAD_KINDS

CLASSES = sorted(HEAD_KINDS)
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
SETS = {"trashnet": DATA / "trashnet", "more_photos": DATA / "more_photos"}


def _evidence(head: dict[str, float], imagenet: dict[int, float] | None = None) -> Evidence:
    h = np.array([head.get(c, 0.0) for c in CLASSES], dtype=np.float32)
    i = np.full(1000, 1.0 / 1000, dtype=np.float32)
    for index, p in (imagenet or {}).items():
        i[index] = p
    return Evidence(head=h / h.sum(), imagenet=i / i.sum())


# --------------------------------------------------------------------------- labels → classes


def test_every_labelled_foil_and_film_photo_trains_a_class_in_its_own_stream() -> None:
    lookalikes = load_lookalikes()
    streams = load_photo_streams()
    taught = {kind: 0 for kind in LOOKALIKE_CLASSES}
    for photo, kind in lookalikes.items():
        folder = photo.split("/")[0]
        head_class = head_class_of(photo, folder, lookalikes)
        if kind in LOOKALIKE_CLASSES:
            taught[kind] += 1
            assert head_class == LOOKALIKE_CLASSES[kind], photo
            # The class's stream is the one the person gave the photo.
            assert HEAD_KINDS[head_class].stream is streams[photo], photo
            # ... and not one its folder would have taught: the label changes the lesson.
            assert HEAD_KINDS[head_class].stream not in FOLDERS[folder].streams, photo
        else:
            # Drinking glasses are labelled on the holdout only: they keep their folder's class.
            assert head_class == FOLDERS[folder].head_class
    assert taught == {"foil": 58, "foil_tray": 74, "film": 129}
    assert head_class_of("metal/not-labelled.jpg", "metal", lookalikes) == "metal"


def test_foil_and_film_classes_name_their_stream_and_their_neighbour() -> None:
    foil, film = HEAD_KINDS["foil"], HEAD_KINDS["film"]
    assert (foil.label, foil.stream, foil.also[0]) == (
        "aluminium_foil",
        Stream.GENERAL,
        Stream.METAL,
    )
    assert (film.label, film.stream, film.also[0]) == ("plastic_film", Stream.VINYL, Stream.GENERAL)
    assert set(LOOKALIKE_CLASSES.values()) == {"foil", "film"}
    # Every head class is taught by a folder or by labelled photos, and nothing else.
    assert {f.head_class for f in FOLDERS.values()} | set(LOOKALIKE_CLASSES.values()) == set(
        HEAD_KINDS
    )


def _train_counts() -> dict[str, int]:
    """Labelled look-alike photos in the ``train`` part of the split, per kind."""
    lookalikes = load_lookalikes()
    counts: dict[str, int] = {}
    for name, root in SETS.items():
        folders = {p.split("/")[0] for p in lookalikes}
        samples = [s for s in list_samples(root) if s.label in folders]
        parts = three_way_split(samples, trashnet=name == "trashnet")
        for sample in samples:
            kind = lookalikes.get(f"{sample.label}/{sample.path.name}")
            if kind is not None and parts[sample.path] == "train":
                counts[kind] = counts.get(kind, 0) + 1
    return counts


@pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} is not present")
def test_the_committed_head_was_trained_on_the_labelled_train_photos() -> None:
    """The manifest the training script wrote says how many train photos of each look-alike
    reached it and how many photos each class had: both must match the labels and the split."""
    counts = _train_counts()
    assert counts.get("drinking_glass", 0) == 0  # holdout labels only
    training = load_manifest(MODELS_DIR).meta["training"]
    assert isinstance(training, dict)
    assert training["train_photos_per_lookalike"] == counts
    per_class = training["train_photos_per_class"]
    assert per_class["foil"] == counts["foil"] + counts["foil_tray"] > 0
    assert per_class["film"] == counts["film"] > 0
    assert {"foil", "film"} <= set(load_manifest(MODELS_DIR).meta["classes"])


def test_the_training_script_labels_photos_through_their_lookalike() -> None:
    """``scripts/train_vision.py`` turns labelled photos into their look-alike's class (torch is
    a training-only dependency: skipped where it is not installed)."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        train_vision = importlib.import_module("train_vision")
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    lookalikes = load_lookalikes()
    foil = next(p for p, k in lookalikes.items() if k == "foil_tray")
    film = next(p for p, k in lookalikes.items() if k == "film" and p.startswith("trash/"))

    class FakePhotos:
        key = np.array([foil, film, "metal/unlabelled.jpg", "trash/unlabelled.jpg"])
        folder = np.array([foil.split("/")[0], "trash", "metal", "trash"])

    y = train_vision.labels(FakePhotos(), CLASSES)
    assert [CLASSES[i] for i in y] == ["foil", "film", "metal", "trash"]


# --------------------------------------------------------------------------- answers


def test_a_foil_answer_is_general_waste_and_offers_metal_when_unsure() -> None:
    sure = interpret(_evidence({"foil": 0.97, "metal": 0.03}), CLASSES, "m")
    assert (sure.label, sure.stream) == ("aluminium_foil", Stream.GENERAL)
    assert sure.confidence > 0.9 and clarification_for(sure, Locale.KO) is None
    unsure = interpret(_evidence({"foil": 0.5, "metal": 0.45, "plastic": 0.05}), CLASSES, "m")
    assert unsure.stream is Stream.GENERAL and unsure.confidence < CLARIFY_BELOW
    clarifier = VisionClarifier()
    question = clarifier.question(unsure, Locale.EN)
    assert question is not None
    assert [ch.stream for ch in question.choices][:2] == [Stream.GENERAL, Stream.METAL]
    picked = clarifier.resolve(unsure, question, question.choices[0].label)
    assert picked is not None and (picked.stream, picked.confirmed) == (Stream.GENERAL, True)


def test_foil_and_trash_together_are_one_general_answer() -> None:
    """Foil and general waste are the same bin: the stream's probability is their sum."""
    c = interpret(_evidence({"foil": 0.5, "trash": 0.45, "metal": 0.05}), CLASSES, "m")
    assert c.stream is Stream.GENERAL and c.confidence == pytest.approx(0.95, abs=1e-3)


def test_a_film_answer_is_vinyl_and_offers_general_waste_for_soiled_film() -> None:
    sure = interpret(_evidence({"film": 0.98, "trash": 0.02}), CLASSES, "m")
    assert (sure.label, sure.stream) == ("plastic_film", Stream.VINYL)
    assert sure.confidence > 0.9
    lone = interpret(_evidence({"film": 0.6, "paper": 0.4}), CLASSES, "m")
    question = clarification_for(lone, Locale.KO)
    assert question is not None
    streams = [ch.stream for ch in question.choices]
    assert streams[0] is Stream.VINYL
    assert Stream.GENERAL in streams and Stream.PAPER in streams
    assert question.choices[0].label == "plastic_film"


# --------------------------------------------------------------------------- real photos


@pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} is not present")
def test_held_out_foil_and_film_are_not_named_wrongly_with_confidence(
    embedded: EmbeddedClassifier,
) -> None:
    """The labelled look-alikes of the never-tuned holdout, which the head never saw. Before
    the foil and film classes 16 of the 59 went to a wrong bin above 0.9 (foil 3, foil dishes
    10, film 3) and 10 were right; measured since: no sure mistake on foil or foil dishes, one
    on film (a wrapper read as paper), 53 right (docs/benchmarks.md). Floors, not the figures:
    they leave room for a retrained head, not for a return of the sure foil mistakes."""
    lookalikes = load_lookalikes()
    own = load_photo_streams()
    results: dict[str, list[tuple[bool, float]]] = {}
    for name, root in SETS.items():
        folders = {p.split("/")[0] for p, k in lookalikes.items() if k in LOOKALIKE_CLASSES}
        samples = [s for s in list_samples(root) if s.label in folders]
        parts = three_way_split(samples, trashnet=name == "trashnet")
        for sample in samples:
            key = f"{sample.label}/{sample.path.name}"
            kind = lookalikes.get(key)
            if kind not in LOOKALIKE_CLASSES or parts[sample.path] != "holdout":
                continue
            result = embedded.classify_bytes(sample.path.read_bytes())
            right = result.stream in accepted_streams(key, FOLDERS[sample.label], own)
            results.setdefault(str(kind), []).append((right, result.confidence))
    assert {k: len(v) for k, v in results.items()} == {"foil": 14, "foil_tray": 16, "film": 29}
    sure_mistakes = {
        k: sum(not right and confidence > SURE for right, confidence in v)
        for k, v in results.items()
    }
    accuracy = {k: sum(right for right, _ in v) / len(v) for k, v in results.items()}
    assert sure_mistakes["foil"] == sure_mistakes["foil_tray"] == 0, sure_mistakes
    assert sure_mistakes["film"] <= 1, sure_mistakes
    assert min(accuracy["foil"], accuracy["foil_tray"]) >= 0.9, accuracy
    assert accuracy["film"] >= 0.7, accuracy
