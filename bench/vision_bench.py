"""Benchmark of the embedded vision classifier: model load time and time per image.

    .venv/bin/python bench/vision_bench.py [--images DIR] [--n 300] [--threads 1]

Times, one image at a time as a scan does it: load (checksums + onnxruntime session + head;
the first load in the process is the one a server start pays),
then for each photo the full ``classify_bytes`` path (safe decode, preprocess, backbone,
head, interpretation), and separately the model part alone (backbone + head on a prepared
tensor). Prints p50 / p95 / mean in milliseconds.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.vision.backbone import preprocess  # noqa: E402
from server.vision.dataset import list_samples, split  # noqa: E402
from server.vision.embedded import EmbeddedClassifier  # noqa: E402
from server.vision.images import decode_image  # noqa: E402


def _summary(name: str, seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return (
        f"{name:<28} p50 {np.percentile(ms, 50):6.2f} ms   p95 {np.percentile(ms, 95):6.2f} ms"
        f"   mean {statistics.fmean(ms.tolist()):6.2f} ms   (n={len(ms)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=ROOT.parent / "shared/data/trashnet")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument(
        "--threads", type=int, default=1, help="onnxruntime intra-op threads (0: all cores)"
    )
    args = parser.parse_args()

    print(
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"python {platform.python_version()}"
    )
    loads = []
    for _ in range(5):
        classifier = EmbeddedClassifier(threads=args.threads)
        started = time.perf_counter()
        classifier.load()
        loads.append(time.perf_counter() - started)
    print(f"{'model load, first (cold)':<28} {loads[0] * 1000:6.2f} ms")
    print(_summary("model load, again", loads[1:]))

    samples = split(list_samples(args.images))[1][: args.n]
    blobs = [s.path.read_bytes() for s in samples]
    for data in blobs[:10]:  # warm-up: first runs allocate onnxruntime's arenas
        classifier.classify_bytes(data)
    full = []
    for data in blobs:
        started = time.perf_counter()
        classifier.classify_bytes(data)
        full.append(time.perf_counter() - started)
    tensors = [preprocess(decode_image(data).image) for data in blobs]
    model_only = []
    for tensor in tensors:
        started = time.perf_counter()
        classifier.evidence(tensor)
        model_only.append(time.perf_counter() - started)
    print(_summary("classify_bytes (end to end)", full))
    print(_summary("backbone + head only", model_only))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
