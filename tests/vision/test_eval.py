"""``wastecoach eval vision DIR``: report and PNG on a small folder-per-class set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from server.vision.dataset import Sample
from server.vision.eval import main


def _build(tmp_path: Path, samples: list[Sample], rename: dict[str, str]) -> Path:
    root = tmp_path / "set"
    for sample in samples:
        folder = root / rename.get(sample.label, sample.label)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample.path, folder / sample.path.name)
    return root


def _pick(samples: list[Sample], labels: tuple[str, ...], n: int) -> list[Sample]:
    return [s for label in labels for s in [x for x in samples if x.label == label][:n]]


def test_trashnet_folders_report_accuracy_matrix_timing_and_png(
    tmp_path: Path, validation_samples: list[Sample], capsys: pytest.CaptureFixture[str]
) -> None:
    root = _build(tmp_path, _pick(validation_samples, ("glass", "paper", "metal"), 5), {})
    (root / "paper" / "notes.txt").write_text("ignored: not an image suffix")
    png = tmp_path / "matrix.png"
    assert main([str(root), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "images: 15" in out
    assert "accuracy:" in out and "time per image:" in out and "stream accuracy" in out
    for label in ("glass", "paper", "metal"):
        assert any(line.startswith(label) for line in out.splitlines())
    matrix_rows = out.split("confusion matrix")[1].strip().splitlines()[2:5]
    assert sum(int(v) for row in matrix_rows for v in row.split()[1:]) == 15
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 200


def test_stream_named_folders_compare_streams(
    tmp_path: Path, validation_samples: list[Sample], capsys: pytest.CaptureFixture[str]
) -> None:
    picked = _pick(validation_samples, ("glass", "cardboard", "trash"), 3)
    root = _build(tmp_path, picked, {"cardboard": "paper", "trash": "general"})
    assert main([str(root), "--png", str(tmp_path / "m.png")]) == 0
    out = capsys.readouterr().out
    assert "images: 9" in out and "stream accuracy" not in out
    assert any(line.startswith("general") for line in out.splitlines())


def test_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "nope")])
    assert info.value.code == 2
