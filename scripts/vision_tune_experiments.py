"""Compare head variants on the TUNE photos only (issue 16, round 2).

    .venv/bin/python scripts/vision_tune_experiments.py            # every variant
    .venv/bin/python scripts/vision_tune_experiments.py base ens5  # some of them

Each variant is fitted on the ``train`` photos exactly as ``train_vision.py`` fits its head
(same cached features, seeds, epochs), given its temperature and novelty threshold on ``tune``,
and judged through the product's own interpretation on ``tune``: stream accuracy, clarify
rate, calibration error, wrong answers above 0.9 (all, and the labelled look-alikes), batteries,
and TrashNet's tune photos (six-way class and stream accuracy). The holdout is never read here:
these figures are the ones choices are made on. Fitted heads are cached under
``/tmp/vision_tune_members`` by their settings, so ensembles reuse single runs.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from train_vision import (  # noqa: E402
    SEED,
    TRASHNET_HEAD,
    Photos,
    _fit,
    _fit_stream_temperature,
    _fit_temperature,
    combine,
    fit_novelty,
    labels,
    outcomes,
)

from server.vision.eval import Report, accepted_streams  # noqa: E402
from server.vision.head import Head  # noqa: E402
from server.vision.labelmap import FOLDERS, head_class_of, load_lookalikes, load_photo_streams  # noqa: E402
from server.vision.taxonomy import HEAD_KINDS  # noqa: E402

CACHE = Path("/tmp/vision_tune_members")
SEEDS = [SEED + i for i in range(5)]


def member(hidden: int = 512, smoothing: float = 0.05, source: bool = False, mixup: float = 0.0,
           seed: int = SEED) -> dict[str, object]:
    return {"hidden": hidden, "smoothing": smoothing, "source": source, "mixup": mixup,
            "seed": seed}


#: name -> (members, temperature fit): "class" (today: class NLL on tune) or "stream".
VARIANTS: dict[str, tuple[list[dict[str, object]], str]] = {
    "base": ([member()], "class"),
    "base_streamT": ([member()], "stream"),
    "base_seed2": ([member(seed=SEEDS[1])], "class"),
    "base_seed3": ([member(seed=SEEDS[2])], "class"),
    "source": ([member(source=True)], "class"),
    "source_streamT": ([member(source=True)], "stream"),
    "ls0.1": ([member(smoothing=0.1)], "class"),
    "ls0": ([member(smoothing=0.0)], "class"),
    "h1024": ([member(hidden=1024)], "class"),
    "h1024_seed2": ([member(hidden=1024, seed=SEEDS[1])], "class"),
    "h1024_seed3": ([member(hidden=1024, seed=SEEDS[2])], "class"),
    "h1024_streamT": ([member(hidden=1024)], "stream"),
    "mixup0.4": ([member(mixup=0.4)], "class"),
    "ens3": ([member(seed=s) for s in SEEDS[:3]], "class"),
    "ens5": ([member(seed=s) for s in SEEDS], "class"),
    "ens5_streamT": ([member(seed=s) for s in SEEDS], "stream"),
    "source_ens5": ([member(source=True, seed=s) for s in SEEDS], "class"),
    "source_ens5_streamT": ([member(source=True, seed=s) for s in SEEDS], "stream"),
}


def fitted(photos: Photos, y: np.ndarray, train: np.ndarray, n: int, m: dict[str, object]) -> Head:
    key = hashlib.sha256(json.dumps(m, sort_keys=True).encode()).hexdigest()[:16]
    path = CACHE / f"{key}.npz"
    if path.exists():
        return Head.load(path)
    started = time.perf_counter()
    source = photos.dataset[photos.photo[train]] if m["source"] else None
    head = _fit(photos.features[train], y[train], n, int(m["hidden"]), 1e-2,  # type: ignore[arg-type]
                seed=int(m["seed"]), source=source, smoothing=float(m["smoothing"]),  # type: ignore[arg-type]
                mixup=float(m["mixup"]))  # type: ignore[arg-type]
    CACHE.mkdir(parents=True, exist_ok=True)
    head.save(path)
    print(f"  fitted {m} in {time.perf_counter() - started:.0f} s", flush=True)
    return head


def main(names: list[str]) -> int:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    photos = Photos()
    classes = sorted(HEAD_KINDS)
    y = labels(photos, classes)[photos.photo]
    train = photos.rows("train", originals=False)
    train0 = photos.rows("train")
    tune = photos.rows("tune")
    tune_tn = photos.rows("tune", dataset="trashnet")
    photo_streams = load_photo_streams()
    lookalikes = load_lookalikes()
    right = np.array([
        [HEAD_KINDS[c].stream in accepted_streams(str(photos.key[photos.photo[r]]),
                                                   FOLDERS[str(photos.folder[photos.photo[r]])],
                                                   photo_streams) for c in classes]
        for r in tune
    ], dtype=np.float32)
    header = ("variant", "T", "stream", "clarify", "acc_not_asked", "ECE", "sure>0.9",
              "lookalike_sure", "battery", "TN_class6", "TN_stream", "head_class")
    rows = []
    for name in names or list(VARIANTS):
        members, tmode = VARIANTS[name]
        heads = [fitted(photos, y, train, len(classes), m) for m in members]
        base = combine(heads)
        logits = base.logits(photos.features[tune])
        t = (_fit_temperature(logits, y[tune]) if tmode == "class"
             else _fit_stream_temperature(logits, right))
        head = Head(classes=classes, mean=base._mean, scale=base._scale, layers=base._layers,
                    temperature=t)
        head = fit_novelty(head, photos.features[train0], y[train0], photos.features[tune],
                           len(classes))
        report = Report(outcomes=outcomes(photos, tune, head, "experiment"))
        tn = Report(outcomes=outcomes(photos, tune_tn, head, "experiment"))
        pred = head.probabilities(photos.features[tune_tn]).argmax(1)
        six = np.mean([
            TRASHNET_HEAD.get(classes[p]) == folder
            or classes[p] == head_class_of(key, folder, lookalikes)
            for p, r in zip(pred, tune_tn, strict=True)
            for key, folder in [(str(photos.key[photos.photo[r]]),
                                 str(photos.folder[photos.photo[r]]))]
        ])
        look_sure = sum(len(sub.sure_mistakes) for _, sub in report.lookalikes())
        head_class = float(np.mean(logits.argmax(1) == y[tune]))
        row = (name, f"{t:.3f}", f"{report.accuracy:.4f}", f"{report.clarify_rate:.3f}",
               f"{report.accuracy_answered:.3f}", f"{report.ece:.4f}",
               str(len(report.sure_mistakes)), str(look_sure),
               f"{report.folder_accuracy('battery')[0]:.3f}", f"{six:.4f} ({len(tune_tn)})",
               f"{tn.accuracy:.4f}", f"{head_class:.4f}")
        rows.append(row)
        print("  " + " | ".join(row), flush=True)
        print("    sure mistakes: " + ", ".join(
            f"{o.photo}→{o.result.stream.value}@{o.result.confidence:.2f}"
            for o in report.sure_mistakes), flush=True)
    print("\n| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
