"""``wastecoach eval vision DIR``: measure the embedded classifier on labelled photos.

DIR holds one folder per kind. A label map says which disposal streams are a right first
answer for each folder: by default ``labelmap.FOLDERS`` (the TrashNet and more_photos folder
names), a folder named after a stream (``paper``, ``clear_pet``, ``battery``, ...) stands for
itself, and ``--labels FILE`` gives any other set its own map (``labelmap.load_label_map``).

Reports, for the first answer as a user gets it (after the ImageNet overrides, refinements and
doubt): stream accuracy, per-kind accuracy, how often the app would ask (confidence under
``clarify.CLARIFY_BELOW``) and the accuracy of the answers it would not ask about, the expected
calibration error (ECE: how far the stated confidence is from the share of right answers, over
ten confidence bins), the wrong answers given with confidence above ``SURE``, and the time per
image (decode to classification, one image at a time as in production). Draws the confusion
matrix (rows: folders, columns: the stream answered) to a PNG with Pillow.

``--holdout`` keeps only the never-tuned holdout of ``dataset.three_way_split`` (for the six
TrashNet folders, TrashNet's original held-out split); ``--part tune`` (or ``train``) keeps that
part instead, so a rule chosen on tune can be reported on tune and on the holdout apart.

Photos a person labelled as a look-alike (foil, plastic film, drinking glass:
``labelmap.load_lookalikes``) are reported on their own too: how many, how often their stream
was right, how often the app asked, and how many got a wrong stream above ``SURE``. These are
where a confident wrong bin is likeliest, and in a folder of hundreds they would not show.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from protocol.messages import Classification
from protocol.streams import Stream
from server.vision.clarify import CLARIFY_BELOW
from server.vision.dataset import Part, Sample, list_samples, three_way_split
from server.vision.embedded import EmbeddedClassifier
from server.vision.errors import ImageRejected
from server.vision.labelmap import (
    FOLDERS,
    FolderLabel,
    load_label_map,
    load_lookalikes,
    load_photo_streams,
)

#: A wrong answer above this confidence is reported one by one: nobody would be asked.
SURE = 0.9
ECE_BINS = 10
TRASHNET_FOLDERS = frozenset({"cardboard", "glass", "metal", "paper", "plastic", "trash"})


@dataclass(frozen=True, slots=True)
class Outcome:
    photo: str
    """``folder/file name``."""
    folder: str
    accepted: frozenset[Stream]
    result: Classification
    lookalike: str | None = None
    """The look-alike a person labelled the photo as (``foil``, ``film``, ...), if any."""

    @property
    def correct(self) -> bool:
        return self.result.stream in self.accepted

    @property
    def asked(self) -> bool:
        return self.result.confidence < CLARIFY_BELOW


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def folders(self) -> list[str]:
        return sorted({o.folder for o in self.outcomes})

    @property
    def streams(self) -> list[Stream]:
        """Columns of the confusion matrix: every stream answered, in the enum's order."""
        answered = {o.result.stream for o in self.outcomes}
        return [s for s in Stream if s in answered]

    @property
    def accuracy(self) -> float:
        return _share([o.correct for o in self.outcomes])

    @property
    def clarify_rate(self) -> float:
        return _share([o.asked for o in self.outcomes])

    @property
    def accuracy_answered(self) -> float:
        return _share([o.correct for o in self.outcomes if not o.asked])

    def folder_accuracy(self, folder: str) -> tuple[float, int]:
        hits = [o.correct for o in self.outcomes if o.folder == folder]
        return _share(hits), len(hits)

    @property
    def ece(self) -> float:
        """Expected calibration error of the stated confidence against stream correctness."""
        if not self.outcomes:
            return 0.0
        bins: list[list[Outcome]] = [[] for _ in range(ECE_BINS)]
        for o in self.outcomes:
            bins[min(ECE_BINS - 1, int(o.result.confidence * ECE_BINS))].append(o)
        gap = 0.0
        for members in bins:
            if members:
                confidence = statistics.fmean(o.result.confidence for o in members)
                gap += len(members) * abs(confidence - _share([o.correct for o in members]))
        return gap / self.total

    @property
    def sure_mistakes(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.correct and o.result.confidence > SURE]

    def lookalikes(self) -> list[tuple[str, Report]]:
        """One sub-report per labelled look-alike kind, by name."""
        kinds = sorted({o.lookalike for o in self.outcomes if o.lookalike is not None})
        return [
            (kind, Report(outcomes=[o for o in self.outcomes if o.lookalike == kind]))
            for kind in kinds
        ]

    def matrix(self) -> list[list[int]]:
        columns = self.streams
        rows = {folder: [0] * len(columns) for folder in self.folders}
        for o in self.outcomes:
            rows[o.folder][columns.index(o.result.stream)] += 1
        return [rows[folder] for folder in self.folders]


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def folder_labels(folders: set[str], labels: dict[str, FolderLabel]) -> dict[str, FolderLabel]:
    """The label of each folder; ``ValueError`` naming every folder nothing describes."""
    resolved: dict[str, FolderLabel] = {}
    unknown: list[str] = []
    streams = {s.value: s for s in Stream}
    for folder in sorted(folders):
        if folder in labels:
            resolved[folder] = labels[folder]
        elif folder in streams:
            resolved[folder] = FolderLabel(head_class="", streams=frozenset({streams[folder]}))
        else:
            unknown.append(folder)
    if unknown:
        raise ValueError(
            f"no label for folder(s) {', '.join(unknown)}: name folders after a stream or "
            "a known kind, or give --labels FILE"
        )
    return resolved


def select(root: Path, *, part: Part | None) -> list[Sample]:
    """Every photo under ``root``, or only those of one part of the training script's split."""
    samples = list_samples(root)
    if not samples:
        raise ValueError(f"{root} has no class folders with JPEG, PNG or WebP images")
    if part is not None:
        trashnet = {s.label for s in samples} == TRASHNET_FOLDERS
        parts = three_way_split(samples, trashnet=trashnet)
        samples = [s for s in samples if parts[s.path] == part]
    return samples


def accepted_streams(
    sample_key: str, label: FolderLabel, photo_streams: dict[str, Stream]
) -> frozenset[Stream]:
    """A photo's own label where a person gave one (mixed folders), else its folder's."""
    own = photo_streams.get(sample_key)
    return frozenset({own}) if own is not None else label.streams


def evaluate(
    root: Path,
    classifier: EmbeddedClassifier,
    *,
    holdout: bool = False,
    part: Part | None = None,
    labels: dict[str, FolderLabel] | None = None,
) -> Report:
    samples = select(root, part="holdout" if holdout else part)
    resolved = folder_labels({s.label for s in samples}, FOLDERS if labels is None else labels)
    photo_streams = load_photo_streams()
    lookalikes = load_lookalikes()
    report = Report()
    classifier.load()
    for sample in samples:
        data = sample.path.read_bytes()
        started = time.perf_counter()
        try:
            result = classifier.classify_bytes(data)
        except ImageRejected as exc:
            report.rejected.append(f"{sample.path}: {exc.message}")
            continue
        report.seconds.append(time.perf_counter() - started)
        key = f"{sample.label}/{sample.path.name}"
        report.outcomes.append(
            Outcome(
                photo=key,
                folder=sample.label,
                accepted=accepted_streams(key, resolved[sample.label], photo_streams),
                result=result,
                lookalike=lookalikes.get(key),
            )
        )
    return report


def format_report(report: Report) -> str:
    lines = [
        f"images: {report.total}   stream accuracy (first answer): {report.accuracy:.4f}",
        f"clarify asked: {report.clarify_rate:.4f}   stream accuracy when not asked: "
        f"{report.accuracy_answered:.4f}   calibration error (ECE): {report.ece:.4f}",
    ]
    if report.seconds:
        ms = sorted(s * 1000 for s in report.seconds)
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        lines.append(
            f"time per image: mean {statistics.fmean(ms):.1f} ms, "
            f"p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms"
        )
    width = max(len(c) for c in [*report.folders, "kind"]) + 2
    lines.append("")
    lines.append(f"{'kind':<{width}}{'accuracy':>10}{'n':>6}")
    for folder in report.folders:
        accuracy, n = report.folder_accuracy(folder)
        lines.append(f"{folder:<{width}}{accuracy:>10.3f}{n:>6}")
    lines.append("")
    lines.append("confusion matrix (rows: kind, columns: stream answered)")
    columns = [s.value for s in report.streams]
    cell = max(6, *(len(c) + 1 for c in columns))
    lines.append(" " * width + "".join(f"{c:>{cell}}" for c in columns))
    for folder, row in zip(report.folders, report.matrix(), strict=True):
        lines.append(f"{folder:<{width}}" + "".join(f"{v:>{cell}}" for v in row))
    kinds = report.lookalikes()
    if kinds:
        lines.append("")
        lines.append("look-alikes labelled by a person (each photo scored on its own stream)")
        lines.append(
            f"{'look-alike':<{width}}{'n':>6}{'accuracy':>10}{'asked':>8}"
            f"{'wrong >' + str(SURE):>12}"
        )
        for kind, sub in kinds:
            lines.append(
                f"{kind:<{width}}{sub.total:>6}{sub.accuracy:>10.3f}{sub.clarify_rate:>8.3f}"
                f"{len(sub.sure_mistakes):>12}"
            )
    mistakes = report.sure_mistakes
    lines.append("")
    lines.append(f"wrong answers with confidence above {SURE}: {len(mistakes)}")
    for o in mistakes:
        lines.append(
            f"  {o.photo}: {o.result.label} ({o.result.stream.value}) at {o.result.confidence}"
        )
    for line in report.rejected:
        lines.append(f"rejected: {line}")
    return "\n".join(lines)


def draw_matrix(report: Report, path: Path) -> None:
    """The confusion matrix as a PNG: row-normalised shading, counts in the cells; a cell is
    blue where the stream is right for the row's kind, red where it is wrong."""
    cols = [s.value for s in report.streams]
    rows = report.folders
    matrix = report.matrix()
    right = {(o.folder, o.result.stream.value) for o in report.outcomes if o.correct} | {
        (o.folder, s.value) for o in report.outcomes for s in o.accepted
    }
    font = ImageFont.load_default(size=14)
    cell = max(56, round(max(font.getlength(n) for n in cols)) + 12)
    left = max(90, round(max(font.getlength(n) for n in rows)) + 20)
    top = 90
    width = left + cell * len(cols) + 20
    height = top + cell * len(rows) + 20
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    title = (
        f"stream accuracy {report.accuracy:.3f}  asked {report.clarify_rate:.3f}  "
        f"ECE {report.ece:.3f}  (n={report.total})"
    )
    draw.text((10, 10), title, fill="black", font=font)
    draw.text((left, 36), "stream answered (columns) / kind (rows)", fill="black", font=font)
    for j, name in enumerate(cols):
        draw.text((left + j * cell + 6, top - 24), name, fill="black", font=font)
    for i, name in enumerate(rows):
        y = top + i * cell
        draw.text((10, y + cell // 2 - 8), name, fill="black", font=font)
        row_total = sum(matrix[i]) or 1
        for j, col in enumerate(cols):
            value = matrix[i][j]
            share = value / row_total
            shade = round(255 * (1 - share))
            fill = (shade, shade, 255) if (name, col) in right else (255, shade, shade)
            x = left + j * cell
            draw.rectangle((x, y, x + cell - 2, y + cell - 2), fill=fill, outline="grey")
            text = str(value)
            draw.text(
                (x + (cell - font.getlength(text)) / 2, y + cell // 2 - 8),
                text,
                fill="white" if share > 0.6 else "black",
                font=font,
            )
    image.save(path, format="PNG")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="wastecoach eval vision",
        description="Evaluate the embedded image classifier on DIR (one folder per kind).",
    )
    parser.add_argument("dir", type=Path)
    parser.add_argument(
        "--png",
        type=Path,
        default=Path("vision_confusion.png"),
        help="where to write the confusion matrix (default: %(default)s)",
    )
    parser.add_argument(
        "--holdout",
        action="store_true",
        help="only the never-tuned holdout photos of the training script's split",
    )
    parser.add_argument(
        "--part",
        choices=["train", "tune", "holdout"],
        default=None,
        help="only this part of the training script's split (--holdout: --part holdout)",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        default=None,
        help='label map JSON: {"folder": {"streams": ["glass", ...]}} (default: built in)',
    )
    args = parser.parse_args(argv)
    try:
        labels = load_label_map(args.labels) if args.labels else None
        if args.holdout and args.part not in (None, "holdout"):
            raise ValueError(f"--holdout and --part {args.part} contradict each other")
        report = evaluate(
            args.dir,
            EmbeddedClassifier(),
            part="holdout" if args.holdout else args.part,
            labels=labels,
        )
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    print(format_report(report))
    draw_matrix(report, args.png)
    print(f"\nconfusion matrix written to {args.png}")
    return 0
