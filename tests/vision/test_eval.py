"""``wastecoach eval vision DIR``: report and PNG on small folder-per-kind sets."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from protocol.messages import Classification, OfficialCategory
from protocol.streams import OFFICIAL_PATH, Stream
from server.vision.dataset import Sample
from server.vision.eval import Outcome, Report, accepted_streams, format_report, main
from server.vision.labelmap import (
    FOLDERS,
    load_label_map,
    load_lookalikes,
    load_photo_streams,
)


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
    matrix = out.split("confusion matrix")[1].split("\n\n")[0].strip().splitlines()[2:]
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


def test_look_alikes_a_person_labelled_are_reported_apart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Foil in the trash folder has its folder's stream, general: without its own row a sure
    foil mistake would hide among hundreds of trash photos."""
    foil = [
        replace(_outcome(Stream.METAL, 0.96, Stream.GENERAL), lookalike="foil"),
        replace(_outcome(Stream.GENERAL, 0.8, Stream.GENERAL), lookalike="foil"),
        replace(_outcome(Stream.METAL, 0.5, Stream.GENERAL), lookalike="foil"),
    ]
    film = [replace(_outcome(Stream.VINYL, 0.95, Stream.VINYL), lookalike="film")]
    report = Report(outcomes=[*foil, *film, _outcome(Stream.GENERAL, 0.99, Stream.GENERAL)])
    kinds = dict(report.lookalikes())
    assert sorted(kinds) == ["film", "foil"]
    assert kinds["foil"].total == 3
    assert kinds["foil"].accuracy == pytest.approx(1 / 3)
    assert kinds["foil"].clarify_rate == pytest.approx(1 / 3)
    assert len(kinds["foil"].sure_mistakes) == 1
    assert len(kinds["film"].sure_mistakes) == 0
    out = format_report(report)
    rows = out.split("look-alikes labelled by a person")[1].splitlines()
    assert rows[2].split() == ["film", "1", "1.000", "0.000", "0"]
    assert rows[3].split() == ["foil", "3", "0.333", "0.333", "1"]


def test_every_labelled_look_alike_has_its_own_stream_from_the_rules() -> None:
    """The committed labels: each look-alike photo is scored on one stream, the one the
    official dictionary gives its kind (알루미늄 호일 and 은박 접시 → 일반종량제, 비닐류 → 비닐,
    유리컵 → 불연성)."""
    right = {
        "foil": Stream.GENERAL,
        "foil_tray": Stream.GENERAL,
        "film": Stream.VINYL,
        "drinking_glass": Stream.NON_COMBUSTIBLE,
    }
    streams = load_photo_streams()
    kinds = load_lookalikes()
    assert set(kinds.values()) <= set(right)
    for photo, kind in kinds.items():
        assert streams[photo] is right[kind], photo
    assert {"foil", "film"} <= set(kinds.values())


def test_part_picks_one_part_of_the_split(
    tmp_path: Path, validation_samples: list[Sample], capsys: pytest.CaptureFixture[str]
) -> None:
    root = _build(tmp_path, _pick(validation_samples, ("glass", "paper"), 20), {})
    counts = {}
    for part in ("train", "tune", "holdout"):
        assert main([str(root), "--part", part, "--png", str(tmp_path / "m.png")]) == 0
        counts[part] = int(capsys.readouterr().out.split("images: ")[1].split()[0])
    assert sum(counts.values()) == 40
    assert counts["tune"] > 0 and counts["train"] > 0
    with pytest.raises(SystemExit):
        main([str(root), "--holdout", "--part", "tune"])
