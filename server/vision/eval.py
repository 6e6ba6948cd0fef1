"""``wastecoach eval vision DIR``: measure the embedded classifier on labelled photos.

DIR holds one folder per class. The folder names decide what is compared:

* TrashNet class names (cardboard, glass, metal, paper, plastic, trash): the head's six-way
  answer, plus how often the final stream (after the ImageNet overrides and refinements) is
  right for the class (``taxonomy.ACCEPTED_STREAMS``: clear PET is right for "plastic");
* stream names (``paper``, ``clear_pet``, ``food``, ...): the final stream;
* anything else: the final label (``pet_bottle``, ``paper_cup``, ...).

Prints accuracy, per-class precision and recall, the confusion matrix and the time per image
(decode to classification, one image at a time as in production), and draws the matrix to a
PNG with Pillow. ``--holdout`` keeps only the photos of the training script's validation split,
the ones the head never saw.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from protocol.streams import Stream
from server.vision.dataset import list_samples, split
from server.vision.embedded import EmbeddedClassifier
from server.vision.errors import ImageRejected
from server.vision.taxonomy import ACCEPTED_STREAMS, TRASHNET

OTHER = "(other)"


@dataclass
class Report:
    classes: list[str]
    """Row order of the matrix; columns add ``OTHER`` when a prediction fell outside."""
    matrix: list[list[int]]
    seconds: list[float] = field(default_factory=list)
    stream_hits: int = 0
    stream_total: int = 0
    rejected: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return self.classes + ([OTHER] if any(row[-1] for row in self.matrix) else [])

    @property
    def total(self) -> int:
        return sum(map(sum, self.matrix))

    @property
    def accuracy(self) -> float:
        hits = sum(self.matrix[i][i] for i in range(len(self.classes)))
        return hits / self.total if self.total else 0.0

    def precision(self, i: int) -> float:
        predicted = sum(row[i] for row in self.matrix)
        return self.matrix[i][i] / predicted if predicted else 0.0

    def recall(self, i: int) -> float:
        actual = sum(self.matrix[i])
        return self.matrix[i][i] / actual if actual else 0.0


def evaluate(root: Path, classifier: EmbeddedClassifier, *, holdout: bool = False) -> Report:
    samples = list_samples(root)
    if holdout:
        samples = split(samples)[1]
    classes = sorted({s.label for s in samples})
    if not classes:
        raise ValueError(f"{root} has no class folders with JPEG, PNG or WebP images")
    trashnet_mode = set(classes) <= set(TRASHNET)
    stream_mode = not trashnet_mode and set(classes) <= {s.value for s in Stream}
    report = Report(classes=classes, matrix=[[0] * (len(classes) + 1) for _ in classes])
    classifier.load()
    head_classes = classifier.head_classes
    for sample in samples:
        data = sample.path.read_bytes()
        started = time.perf_counter()
        try:
            evidence, result = classifier.analyse_bytes(data)
        except ImageRejected as exc:
            report.rejected.append(f"{sample.path}: {exc.message}")
            continue
        report.seconds.append(time.perf_counter() - started)
        if trashnet_mode:
            predicted = head_classes[int(evidence.head.argmax())]
            report.stream_total += 1
            report.stream_hits += result.stream in ACCEPTED_STREAMS[sample.label]
        elif stream_mode:
            predicted = result.stream.value
        else:
            predicted = result.label
        row = classes.index(sample.label)
        col = classes.index(predicted) if predicted in classes else len(classes)
        report.matrix[row][col] += 1
    return report


def format_report(report: Report) -> str:
    lines = [f"images: {report.total}   accuracy: {report.accuracy:.4f}"]
    if report.stream_total:
        lines.append(
            f"stream accuracy after ImageNet overrides: "
            f"{report.stream_hits / report.stream_total:.4f}"
        )
    if report.seconds:
        ms = sorted(s * 1000 for s in report.seconds)
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        lines.append(
            f"time per image: mean {statistics.fmean(ms):.1f} ms, "
            f"p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms"
        )
    width = max(len(c) for c in [*report.columns, "class"]) + 2
    lines.append("")
    lines.append(f"{'class':<{width}}{'precision':>10}{'recall':>8}{'n':>6}")
    for i, name in enumerate(report.classes):
        lines.append(
            f"{name:<{width}}{report.precision(i):>10.3f}{report.recall(i):>8.3f}"
            f"{sum(report.matrix[i]):>6}"
        )
    lines.append("")
    lines.append("confusion matrix (rows: true class, columns: predicted)")
    cols = report.columns
    cell = max(6, *(len(c) + 1 for c in cols))
    lines.append(" " * width + "".join(f"{c:>{cell}}" for c in cols))
    for i, name in enumerate(report.classes):
        lines.append(
            f"{name:<{width}}" + "".join(f"{v:>{cell}}" for v in report.matrix[i][: len(cols)])
        )
    for line in report.rejected:
        lines.append(f"rejected: {line}")
    return "\n".join(lines)


def draw_matrix(report: Report, path: Path) -> None:
    """The confusion matrix as a PNG: row-normalised shading, counts in the cells."""
    cols = report.columns
    font = ImageFont.load_default(size=14)
    names = [*cols, *report.classes]
    # Wide enough for the longest class name, so labels never run into each other.
    cell = max(56, round(max(font.getlength(n) for n in names)) + 12)
    left = max(90, round(max(font.getlength(n) for n in report.classes)) + 20)
    top = 90
    width = left + cell * len(cols) + 20
    height = top + cell * len(report.classes) + 20
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    title = f"accuracy {report.accuracy:.3f}  (n={report.total})"
    draw.text((10, 10), title, fill="black", font=font)
    draw.text((left, 36), "predicted (columns) / true (rows)", fill="black", font=font)
    for j, name in enumerate(cols):
        draw.text((left + j * cell + 6, top - 24), name, fill="black", font=font)
    for i, name in enumerate(report.classes):
        y = top + i * cell
        draw.text((10, y + cell // 2 - 8), name, fill="black", font=font)
        row_total = sum(report.matrix[i]) or 1
        for j in range(len(cols)):
            value = report.matrix[i][j]
            share = value / row_total
            shade = round(255 * (1 - share))
            fill = (shade, shade, 255) if i == j else (255, shade, shade)
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
        description="Evaluate the embedded image classifier on DIR (one folder per class).",
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
        help="only the photos of the training script's validation split",
    )
    args = parser.parse_args(argv)
    try:
        report = evaluate(args.dir, EmbeddedClassifier(), holdout=args.holdout)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    print(format_report(report))
    draw_matrix(report, args.png)
    print(f"\nconfusion matrix written to {args.png}")
    return 0
