"""EfficientNet-Lite0 under onnxruntime: image preprocessing and the session.

The ONNX graph (written by ``scripts/train_vision.py``) takes ``pixels``, float32
``(N, 3, 224, 224)`` RGB values in 0..255, normalises them itself the way EfficientNet-Lite
was trained ((x − 127) / 128), and returns

* ``features`` (N, 1584), what the trained head reads: the pooled final embedding (1280)
  followed by the pooled outputs of blocks 10 and 14 (112 + 192),
* ``logits`` (N, 1000) over the ImageNet classes.

Training and serving call the same :func:`preprocess`, so the head sees at run time exactly
what it was fitted on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from PIL import Image

INPUT_SIZE = 224
FEATURE_DIM = 1584
IMAGENET_CLASSES = 1000

Floats = npt.NDArray[np.float32]


def preprocess(image: Image.Image) -> Floats:
    """RGB image → ``(3, 224, 224)`` float32: shorter side scaled to 224, centre crop.

    A centre crop rather than a squash keeps proportions (a bottle stays bottle-shaped); people
    centre the item they ask about, and TrashNet photos are centred too.
    """
    width, height = image.size
    scale = INPUT_SIZE / min(width, height)
    size = (max(INPUT_SIZE, round(width * scale)), max(INPUT_SIZE, round(height * scale)))
    # reducing_gap: a box pre-shrink first makes 12 MP photos cheap without visible aliasing.
    resized = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    left = (size[0] - INPUT_SIZE) // 2
    top = (size[1] - INPUT_SIZE) // 2
    crop = resized.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
    array = np.asarray(crop, dtype=np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


class Backbone:
    """One onnxruntime session, safe to call from several threads (onnxruntime's ``run`` is)."""

    def __init__(self, onnx_path: Path, *, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # 0 lets onnxruntime use every core (training does); the server keeps 1, see
        # EmbeddedClassifier.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def run(self, batch: Floats) -> tuple[Floats, Floats]:
        """``(N, 3, 224, 224)`` → (features ``(N, 1584)``, ImageNet logits ``(N, 1000)``)."""
        features, logits = self._session.run(["features", "logits"], {"pixels": batch})
        return np.asarray(features, dtype=np.float32), np.asarray(logits, dtype=np.float32)
