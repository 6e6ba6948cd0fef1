"""``wastecoach eval vision DIR``: report and PNG on small folder-per-kind sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from protocol.messages import Classification, OfficialCategory
from protocol.streams import OFFICIAL_PATH, Stream
from server.vision.dataset import Sample
from server.vision.eval import Outcome, Report, accepted_streams, main
from server.vision.labelmap import FOLDERS, load_label_map


def _build(tmp_path: Path, samples: list[Sample], rename: dict[str, str]) -> Path:
    root = tmp_path / "set"
    for sample in samples:
        folder = root / rename.get(sample.label, sample.label)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample.path, folder / sample.path.name)
    return root


def _pick(samples: list[Sample], labels: tuple[str, ...], n: int) -> list[Sample]:
    return [s for label in labels for s in [x for x in samples if x.label == label][:n]]


def _outcome(stream: Stream, confidence: float, right: Stream) -> Outcome:
    major, middle = OFFICIAL_PATH[stream]
    result = Classification(
        label=stream.value,
        name_ko="x",
        name_en="x",
        stream=stream,
        category=OfficialCategory(major=major, middle=middle),
        confidence=confidence,
        model="test",
    )
    return Outcome(photo="k/x.jpg", folder="k", accepted=frozenset({right}), result=result)


def test_known_folders_report_streams_kinds_clarify_calibration_and_png(
    tmp_path: Path, validation_samples: list[Sample], capsys: pytest.CaptureFixture[str]
) -> None:
    root = _build(tmp_path, _pick(validation_samples, ("glass", "paper", "metal"), 5), {})
    (root / "paper" / "notes.txt").write_text("ignored: not an image suffix")
    png = tmp_path / "matrix.png"
    assert main([str(root), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "images: 15" in out
    for phrase in ("stream accuracy", "clarify asked", "calibration error (ECE)", "time per"):
        assert phrase in out
    for label in ("glass", "paper", "metal"):
        assert any(line.startswith(label) for line in out.splitlines())
    matrix = out.split("confusion matrix")[1].split("wrong answers")[0].strip().splitlines()[2:]
    assert sum(int(v) for row in matrix for v in row.split()[1:]) == 15
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 200


def test_stream_named_folders_and_a_label_map_file(
    tmp_path: Path, validation_samples: list[Sample], capsys: pytest.CaptureFixture[str]
) -> None:
    picked = _pick(validation_samples, ("glass", "cardboard"), 3)
    root = _build(tmp_path, picked, {"cardboard": "paper", "glass": "jars"})
    with pytest.raises(SystemExit) as info:
        main([str(root), "--png", str(tmp_path / "m.png")])
    assert info.value.code == 2
    assert "jars" in capsys.readouterr().err
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"jars": {"streams": ["glass"]}}))
    assert main([str(root), "--labels", str(labels), "--png", str(tmp_path / "m.png")]) == 0
    out = capsys.readouterr().out
    assert "images: 6" in out
    assert any(line.startswith("jars") for line in out.splitlines())


@pytest.mark.parametrize(
    "body",
    ['{"x": {"streams": ["lava"]}}', '{"x": {}}', "[]", "{not json", '{"x": {"streams": []}}'],
)
def test_a_bad_label_map_is_refused_with_its_reason(tmp_path: Path, body: str) -> None:
    path = tmp_path / "labels.json"
    path.write_text(body)
    with pytest.raises(ValueError, match="label map"):
        load_label_map(path)


def test_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "nope")])
    assert info.value.code == 2


def test_calibration_error_and_clarify_rate() -> None:
    calibrated = Report(
        outcomes=[_outcome(Stream.GLASS, 0.8, Stream.GLASS)] * 8
        + [_outcome(Stream.GLASS, 0.8, Stream.NON_COMBUSTIBLE)] * 2
    )
    assert calibrated.ece == pytest.approx(0.0, abs=1e-9)
    assert calibrated.accuracy == pytest.approx(0.8)
    assert calibrated.clarify_rate == 0.0
    overconfident = Report(
        outcomes=[_outcome(Stream.GLASS, 0.99, Stream.GLASS)] * 5
        + [_outcome(Stream.GLASS, 0.99, Stream.NON_COMBUSTIBLE)] * 5
    )
    assert overconfident.ece == pytest.approx(0.49)
    assert len(overconfident.sure_mistakes) == 5
    asked = Report(outcomes=[_outcome(Stream.METAL, 0.5, Stream.METAL)] * 4)
    assert asked.clarify_rate == 1.0


def test_a_photo_labelled_by_a_person_overrides_its_mixed_folder() -> None:
    folder = FOLDERS["white-glass"]
    assert folder.streams == {Stream.GLASS, Stream.NON_COMBUSTIBLE}
    own = {"white-glass/a.jpg": Stream.NON_COMBUSTIBLE}
    assert accepted_streams("white-glass/a.jpg", folder, own) == {Stream.NON_COMBUSTIBLE}
    assert accepted_streams("white-glass/b.jpg", folder, own) == folder.streams
