"""The TrashNet head: a small numpy network on top of the backbone's 1584-d features.

Stored as a plain ``.npz`` of float32 arrays (``allow_pickle`` stays off), written by
``scripts/train_vision.py``:

* ``mean``, ``scale``: feature standardisation fitted on the training split,
* ``w0``, ``b0``, ``w1``, ``b1``, …: dense layers, ReLU between them, none after the last,
* ``temperature``: softmax temperature fitted on out-of-fold training predictions so that
  the reported confidence means what it says,
* ``classes``: the class names, in output order.
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

    @classmethod
    def load(cls, path: Path) -> Head:
        with np.load(path, allow_pickle=False) as data:
            layers: list[tuple[Floats, Floats]] = []
            while f"w{len(layers)}" in data:
                i = len(layers)
                layers.append((data[f"w{i}"].astype(np.float32), data[f"b{i}"].astype(np.float32)))
            return cls(
                classes=[str(c) for c in data["classes"]],
                mean=data["mean"].astype(np.float32),
                scale=data["scale"].astype(np.float32),
                layers=layers,
                temperature=float(data["temperature"]),
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
