"""Extract and cache the backbone's outputs for every photo the vision head trains or is judged on.

    .venv/bin/python scripts/vision_features.py            # writes .cache/vision/*.npz

Per photo set (``trashnet``, ``more_photos``) one ``.npz`` under ``.cache/vision/`` (git
ignores it) with, for every view of every photo: the 1584-d features, the 1000 ImageNet
logits, the photo's index and its view (0 = the photo as served, 1–3 augmented copies). Only
``train`` photos get augmented views: a mirror, and two random crops with colour, brightness
and contrast jitter (one of them mirrored). Seeded; the cache is keyed by the split and the
backbone's SHA-256, so a changed split or model is re-extracted rather than silently reused.

Extraction is the slow part (about 10,000 photos, 25,000 views, on a shared 2-core CPU);
heads are then fitted in seconds by ``scripts/train_vision.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.vision.backbone import Backbone, preprocess  # noqa: E402
from server.vision.dataset import Part, Sample, list_samples, three_way_split  # noqa: E402
from server.vision.images import decode_image  # noqa: E402
from server.vision.manifest import MODELS_DIR, sha256_file  # noqa: E402

SEED = 20261203
CACHE_DIR = ROOT / ".cache" / "vision"
BACKBONE = MODELS_DIR / "efficientnet_lite0.onnx"
SETS = {
    "trashnet": ROOT.parent / "shared/data/trashnet",
    "more_photos": ROOT.parent / "shared/data/more_photos",
}


def random_crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A crop keeping 60–100 % of the area with a mild aspect change, as a hand-held shot."""
    width, height = image.size
    area = width * height * rng.uniform(0.6, 1.0)
    ratio = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    cw = min(width, round(np.sqrt(area * ratio)))
    ch = min(height, round(np.sqrt(area / ratio)))
    left = int(rng.integers(0, width - cw + 1))
    top = int(rng.integers(0, height - ch + 1))
    return image.crop((left, top, left + cw, top + ch))


def colour_jitter(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Lighting and white balance of another kitchen: ±25 % brightness, contrast, saturation."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(float(rng.uniform(0.75, 1.25)))
    return image


def views(image: Image.Image, augment: bool, rng: np.random.Generator) -> list[Image.Image]:
    if not augment:
        return [image]
    return [
        image,
        ImageOps.mirror(image),
        colour_jitter(random_crop(image, rng), rng),
        ImageOps.mirror(colour_jitter(random_crop(image, rng), rng)),
    ]


def cache_key(samples: list[Sample], parts: dict[Path, Part], backbone_sha: str) -> str:
    listing = "\n".join(f"{s.label}/{s.path.name}:{parts[s.path]}" for s in samples)
    return hashlib.sha256(f"{SEED}\n{backbone_sha}\n{listing}".encode()).hexdigest()[:16]


def extract_set(name: str, root: Path, backbone: Backbone, backbone_sha: str) -> Path:
    samples = list_samples(root)
    parts = three_way_split(samples, trashnet=name == "trashnet")
    key = cache_key(samples, parts, backbone_sha)
    out = CACHE_DIR / f"{name}.npz"
    if out.exists() and str(np.load(out)["key"]) == key:
        print(f"{name}: cached ({out})")
        return out
    rng = np.random.default_rng(SEED)
    feats: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    photo: list[int] = []
    view: list[int] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            f, g = backbone.run(np.stack(batch))
            feats.append(f)
            logits.append(g.astype(np.float16))
            batch.clear()

    started = time.perf_counter()
    for index, sample in enumerate(samples):
        image = decode_image(sample.path.read_bytes()).image
        for v, shown in enumerate(views(image, parts[sample.path] == "train", rng)):
            batch.append(preprocess(shown))
            photo.append(index)
            view.append(v)
        if len(batch) >= 32:
            flush()
        if index % 1000 == 999:
            print(
                f"{name}: {index + 1}/{len(samples)} in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
    flush()
    np.savez(
        out,
        key=np.array(key),
        features=np.concatenate(feats),
        logits=np.concatenate(logits),
        photo=np.array(photo, dtype=np.int32),
        view=np.array(view, dtype=np.int8),
        paths=np.array([str(s.path.relative_to(root)) for s in samples]),
        labels=np.array([s.label for s in samples]),
        parts=np.array([parts[s.path] for s in samples]),
    )
    print(
        f"{name}: {len(photo)} views of {len(samples)} photos in "
        f"{time.perf_counter() - started:.0f} s → {out}"
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all)")
    args = parser.parse_args()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    backbone_sha = sha256_file(BACKBONE)
    backbone = Backbone(BACKBONE, threads=args.threads)
    for name, root in SETS.items():
        extract_set(name, root, backbone, backbone_sha)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
