"""The product runs the vision stage with onnxruntime, numpy and Pillow only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_classifying_imports_no_training_dependency() -> None:
    # A fresh interpreter: this test process may have imported anything already.
    code = (
        "import sys\n"
        "from server.vision.stage import build\n"
        "from server.vision.eval import main\n"
        "from server.vision.embedded import EmbeddedClassifier\n"
        "EmbeddedClassifier().load()\n"
        "banned = [m for m in ('torch', 'onnx', 'efficientnet_lite_pytorch', 'matplotlib')"
        " if m in sys.modules]\n"
        "print(','.join(banned))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
