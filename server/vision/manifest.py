"""The model manifest: which files the embedded classifier loads, and their SHA-256.

``models/manifest.json`` is written by ``scripts/train_vision.py`` next to the files it
describes and committed with them. Nothing is loaded before its checksum matches, so a
truncated checkout, a stray edit or a swapped file fails loudly at start-up instead of
producing confident nonsense.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.vision.errors import ModelIntegrityError

MODELS_DIR = Path(__file__).parent / "models"
MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Manifest:
    directory: Path
    version: str
    files: dict[str, str]
    """File name → expected SHA-256 (hex)."""
    meta: dict[str, Any]
    """Everything else the training script recorded (classes, split, metrics)."""

    def path(self, name: str) -> Path:
        if name not in self.files:
            raise ModelIntegrityError(f"{name} is not listed in {self.directory / MANIFEST_NAME}")
        return self.directory / name

    def verified_path(self, name: str) -> Path:
        """Return the path of ``name`` after checking its SHA-256 against the manifest."""
        path = self.path(name)
        if not path.is_file():
            raise ModelIntegrityError(f"model file {path} is missing")
        actual = sha256_file(path)
        if actual != self.files[name]:
            raise ModelIntegrityError(
                f"model file {path} has SHA-256 {actual}, the manifest expects {self.files[name]}"
            )
        return path


def load_manifest(directory: Path = MODELS_DIR) -> Manifest:
    path = directory / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelIntegrityError(f"model manifest {path} is missing") from exc
    except json.JSONDecodeError as exc:
        raise ModelIntegrityError(f"model manifest {path} is not valid JSON: {exc}") from exc
    try:
        files = {str(k): str(v["sha256"]) for k, v in raw["files"].items()}
        version = str(raw["version"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise ModelIntegrityError(f"model manifest {path} lacks 'version' or 'files'") from exc
    meta = {k: v for k, v in raw.items() if k not in ("files", "version")}
    return Manifest(directory=directory, version=version, files=files, meta=meta)


def write_manifest(directory: Path, version: str, names: list[str], meta: dict[str, Any]) -> Path:
    """Record the checksums of ``names`` (files in ``directory``). Used by the training script."""
    files = {
        name: {"sha256": sha256_file(directory / name), "bytes": (directory / name).stat().st_size}
        for name in sorted(names)
    }
    path = directory / MANIFEST_NAME
    body = {"version": version, "files": files, **meta}
    path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
