"""The loader verifies every model file's SHA-256 and refuses a mismatch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from server.vision.embedded import EmbeddedClassifier
from server.vision.errors import ModelIntegrityError
from server.vision.manifest import MODELS_DIR, load_manifest, sha256_file


def _copy_models(tmp_path: Path) -> Path:
    target = tmp_path / "models"
    target.mkdir()
    for path in MODELS_DIR.iterdir():
        if path.is_file():
            shutil.copyfile(path, target / path.name)
    return target


def test_committed_files_match_the_manifest() -> None:
    manifest = load_manifest()
    assert set(manifest.files) == {manifest.meta["backbone"], manifest.meta["head"]}
    for name, digest in manifest.files.items():
        assert sha256_file(MODELS_DIR / name) == digest
        assert manifest.verified_path(name) == MODELS_DIR / name


def test_tampered_head_is_refused(tmp_path: Path) -> None:
    models = _copy_models(tmp_path)
    head = models / load_manifest(models).meta["head"]
    data = bytearray(head.read_bytes())
    data[-20] ^= 0x01  # one flipped bit in the weights
    head.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        EmbeddedClassifier(models).load()


def test_swapped_backbone_is_refused(tmp_path: Path) -> None:
    models = _copy_models(tmp_path)
    backbone = models / load_manifest(models).meta["backbone"]
    backbone.write_bytes(b"not the model that was trained")
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        EmbeddedClassifier(models).classify_bytes(b"irrelevant: loading fails first")


def test_missing_file_or_manifest_is_refused(tmp_path: Path) -> None:
    models = _copy_models(tmp_path)
    (models / load_manifest(models).meta["head"]).unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        EmbeddedClassifier(models).load()
    (models / "manifest.json").unlink()
    with pytest.raises(ModelIntegrityError, match="manifest"):
        EmbeddedClassifier(models).load()
    (models / "manifest.json").write_text(json.dumps({"version": "x"}))
    with pytest.raises(ModelIntegrityError, match="files"):
        EmbeddedClassifier(models).load()
