"""The trained head: a small numpy network on top of the backbone's 1584-d features.

Stored as a plain ``.npz`` of float32 arrays (``allow_pickle`` stays off), written by
``scripts/train_vision.py``:

* ``mean``, ``scale``: feature standardisation fitted on the training split,
* ``w0``, ``b0``, ``w1``, ``b1``, …: dense layers, ReLU between them, none after the last,
* ``temperature``: softmax temperature fitted on out-of-fold training predictions so that
  the reported confidence means what it says,
* ``classes``: the class names, in output order,
* ``novelty_projection``, ``novelty_centroids``, ``novelty_threshold`` (optional): how unlike
  the training photos a photo is. Standardised features are projected on the main axes of
  the within-class spread, whitened (so the distance is a Mahalanobis distance under one
  shared covariance), and compared with each class's centre; the distance to the nearest
  centre, divided by the threshold fitted on the tune split, is the photo's *novelty*: above
  1 the photo is less like any trained kind than nearly all photos of those kinds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from server.vision.errors import ModelIntegrityError

Floats = npt.NDArray[np.float32]


def softmax(logits: Floats, temperature: float = 1.0) -> Floats:
    scaled = logits / np.float32(temperature)
    scaled = scaled - scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    probs: Floats = (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)
    return probs


class Head:
    def __init__(
        self,
        classes: list[str],
        mean: Floats,
        scale: Floats,
        layers: list[tuple[Floats, Floats]],
        temperature: float,
        novelty: tuple[Floats, Floats, float] | None = None,
    ) -> None:
        if not layers:
            raise ModelIntegrityError("the head has no layers")
        if layers[-1][0].shape[1] != len(classes):
            raise ModelIntegrityError("the head's last layer does not match its class list")
        self.classes = classes
        self._mean = mean
        self._scale = scale
        self._layers = layers
        self.temperature = temperature
        self.novelty_model = novelty

    @classmethod
    def load(cls, path: Path) -> Head:
        with np.load(path, allow_pickle=False) as data:
            layers: list[tuple[Floats, Floats]] = []
            while f"w{len(layers)}" in data:
                i = len(layers)
                layers.append((data[f"w{i}"].astype(np.float32), data[f"b{i}"].astype(np.float32)))
            novelty = None
            if "novelty_projection" in data:
                novelty = (
                    data["novelty_projection"].astype(np.float32),
                    data["novelty_centroids"].astype(np.float32),
                    float(data["novelty_threshold"]),
                )
            return cls(
                classes=[str(c) for c in data["classes"]],
                mean=data["mean"].astype(np.float32),
                scale=data["scale"].astype(np.float32),
                layers=layers,
                temperature=float(data["temperature"]),
                novelty=novelty,
            )

    def save(self, path: Path) -> None:
        arrays: dict[str, npt.NDArray[np.generic]] = {
            "classes": np.array(self.classes),
            "mean": self._mean,
            "scale": self._scale,
            "temperature": np.array(self.temperature, dtype=np.float32),
        }
        for i, (w, b) in enumerate(self._layers):
            arrays[f"w{i}"] = w
            arrays[f"b{i}"] = b
        if self.novelty_model is not None:
            projection, centroids, threshold = self.novelty_model
            arrays["novelty_projection"] = projection
            arrays["novelty_centroids"] = centroids
            arrays["novelty_threshold"] = np.array(threshold, dtype=np.float32)
        with path.open("wb") as fh:
            np.savez(fh, allow_pickle=False, **arrays)

    def logits(self, features: Floats) -> Floats:
        x = (features - self._mean) / self._scale
        for i, (w, b) in enumerate(self._layers):
            x = x @ w + b
            if i < len(self._layers) - 1:
                x = np.maximum(x, np.float32(0))
        return x.astype(np.float32)

    def probabilities(self, features: Floats) -> Floats:
        return softmax(self.logits(features), self.temperature)

    def distances(self, features: Floats) -> Floats:
        """Whitened distance of each photo to the nearest class centre (see the docstring)."""
        if self.novelty_model is None:
            raise ModelIntegrityError("this head has no novelty model")
        projection, centroids, _ = self.novelty_model
        z = ((features - self._mean) / self._scale) @ projection
        d2 = (z * z).sum(1)[:, None] - 2 * z @ centroids.T + (centroids * centroids).sum(1)[None]
        distances: Floats = np.sqrt(np.maximum(d2.min(axis=1), 0)).astype(np.float32)
        return distances

    def novelty(self, features: Floats) -> Floats:
        """Distance over the fitted threshold: above 1, unlike the training photos. Zeros for a
        head without a novelty model (nothing to compare with, nothing claimed)."""
        if self.novelty_model is None:
            return np.zeros(len(features), dtype=np.float32)
        return (self.distances(features) / np.float32(self.novelty_model[2])).astype(np.float32)
