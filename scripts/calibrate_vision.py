"""Figures behind the embedded classifier's thresholds, on the tune photos of a photo set.

    .venv/bin/python scripts/calibrate_vision.py [--data ../shared/data/trashnet]
    .venv/bin/python scripts/calibrate_vision.py --data ../shared/data/more_photos

Prints, for the ``tune`` photos of ``server.vision.dataset.three_way_split`` (never the
holdout, which is only reported):

* how often an ImageNet override group would take over at several thresholds, and under the
  policy in ``server.vision.embedded`` (``OVERRIDE_SURE``, ``OVERRIDE_MIN``).
  TrashNet holds no food, electronics, clothing or tissue, so on it every such take-over is
  a mistake (plastic bags are the exception: some ``trash`` photos are bags); the chosen value
  keeps them rare while a clear photo of a banana or a laptop still overrides;
* for the final classification (right streams per folder: ``server.vision.labelmap``), the
  share of photos answered without a question and the stream accuracy among them at several
  clarify cut-offs (``CLARIFY_BELOW``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.vision.dataset import list_samples, three_way_split  # noqa: E402
from server.vision.embedded import OVERRIDE_MIN, OVERRIDE_SURE, EmbeddedClassifier  # noqa: E402
from server.vision.labelmap import FOLDERS  # noqa: E402
from server.vision.taxonomy import HEAD_KINDS, IMAGENET_GROUPS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/trashnet")
    args = parser.parse_args()
    samples = list_samples(args.data)
    parts = three_way_split(samples, trashnet=args.data.name == "trashnet")
    validation = [s for s in samples if parts[s.path] == "tune"]
    classifier = EmbeddedClassifier()
    # Groups for a stream the head learnt from photos never override it (server.vision.embedded).
    head_streams = {HEAD_KINDS[c].stream for c in classifier.head_classes}
    overriders = [
        g
        for g in IMAGENET_GROUPS
        if g.override is not None and g.override.stream not in head_streams
    ]
    rows = []
    for sample in validation:
        evidence, result = classifier.analyse_bytes(sample.path.read_bytes())
        top = int(evidence.imagenet.argmax())
        override = next((g for g in overriders if top in g.indices), None)
        mass = float(evidence.imagenet[list(override.indices)].sum()) if override else 0.0
        head_top = float(evidence.head.max())
        rows.append((sample.label, override.name if override else None, mass, head_top, result))

    print(f"{len(rows)} tune photos")
    print("threshold → photos taken over by an ImageNet group (by group)")
    for threshold in (0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6):
        taken = [(label, group) for label, group, mass, _, _ in rows if group and mass >= threshold]
        by_group: dict[str, int] = {}
        for _, group in taken:
            by_group[group] = by_group.get(group, 0) + 1
        print(f"  {threshold:.2f}: {len(taken):3d} ({len(taken) / len(rows):.1%}) {by_group}")
    policy = [
        (label, group)
        for label, group, mass, head_top, _ in rows
        if group and (mass >= OVERRIDE_SURE or (mass >= OVERRIDE_MIN and mass > head_top))
    ]
    print(
        f"  policy (>= {OVERRIDE_SURE}, or >= {OVERRIDE_MIN} and above the head): "
        f"{len(policy)} ({len(policy) / len(rows):.1%}) {policy}"
    )

    print("CLARIFY_BELOW → answered without a question / stream accuracy answered / asked")
    correct = np.array([r.stream in FOLDERS[label].streams for label, _, _, _, r in rows])
    confidence = np.array([r.confidence for _, _, _, _, r in rows])
    print(f"  overall stream accuracy {correct.mean():.4f}")
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9):
        answered = confidence >= threshold
        asked = ~answered
        acc_asked = f"{correct[asked].mean():.3f}" if asked.any() else "-"
        print(
            f"  {threshold:.1f}: {answered.mean():.3f} / {correct[answered].mean():.3f} / "
            f"{acc_asked} (stream right among the asked)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
