"""scripts/build_knowledge.py: decoding run-together category paths, and the committed
items.json being exactly what the script builds from the official dictionary."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from protocol.messages import OfficialCategory
from protocol.streams import Stream
from server.knowledge.kb import DATA_DIR

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="module")
def build() -> ModuleType:
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module("build_knowledge")
    finally:
        sys.path.remove(str(SCRIPTS))


def _paths(build: ModuleType, tokens: list[str]) -> list[tuple[str | None, ...]]:
    return [(c.major, c.middle, c.minor) for c in build.decode_paths(tokens)]


def test_decodes_two_full_paths(build: ModuleType) -> None:
    tokens = ["재활용폐기물", "금속류", "고철", "일반폐기물", "일반종량제폐기물"]
    assert _paths(build, tokens) == [
        ("재활용폐기물", "금속류", "고철"),
        ("일반폐기물", "일반종량제폐기물", None),
    ]


def test_decodes_a_sibling_middle_under_the_same_major(build: ModuleType) -> None:
    tokens = ["재활용폐기물", "종이", "합성수지 용기류", "일반폐기물"]
    assert _paths(build, tokens) == [
        ("재활용폐기물", "종이", None),
        ("재활용폐기물", "합성수지 용기류", None),
        ("일반폐기물", None, None),
    ]


def test_a_major_that_is_also_a_middle(build: ModuleType) -> None:
    # 대형폐기물 > 재활용폐기물 is one path; followed by its own middle it starts a new one.
    assert _paths(build, ["대형폐기물", "재활용폐기물"]) == [("대형폐기물", "재활용폐기물", None)]
    assert _paths(build, ["대형폐기물", "재활용폐기물", "금속류", "고철"]) == [
        ("대형폐기물", None, None),
        ("재활용폐기물", "금속류", "고철"),
    ]
    assert _paths(build, ["일반폐기물", "일반종량제폐기물", "생활계 유해폐기물", "기타"]) == [
        ("일반폐기물", "일반종량제폐기물", None),
        ("생활계 유해폐기물", "기타", None),
    ]


def test_rejects_a_path_that_does_not_start_with_a_major(build: ModuleType) -> None:
    with pytest.raises(ValueError, match="not a known major"):
        build.decode_paths(["종이", "재활용폐기물"])


@pytest.mark.parametrize(
    ("category", "stream"),
    [
        (OfficialCategory(major="재활용폐기물", middle="종이팩"), Stream.PAPER_PACK),
        (OfficialCategory(major="일반폐기물", middle="불연성종량제폐기물"), Stream.NON_COMBUSTIBLE),
        (OfficialCategory(major="음식물류폐기물"), Stream.FOOD),
        (OfficialCategory(major="생활계 유해폐기물", middle="폐의약품"), Stream.MEDICINE),
        (OfficialCategory(major="생활계 유해폐기물", middle="폐농약"), Stream.HAZARDOUS),
        (OfficialCategory(major="기타"), Stream.OTHER),
    ],
)
def test_stream_of_a_path(build: ModuleType, category: OfficialCategory, stream: Stream) -> None:
    assert build.stream_of(category) is stream


def test_unknown_recyclable_middle_is_refused(build: ModuleType) -> None:
    with pytest.raises(ValueError, match="unknown recyclable middle"):
        build.stream_of(OfficialCategory(major="재활용폐기물", middle="우주선"))


def test_committed_items_are_what_the_script_builds(
    build: ModuleType, official: dict[str, Any], tmp_path: Path
) -> None:
    source = tmp_path / "official.json"
    source.write_text(json.dumps(official, ensure_ascii=False), encoding="utf-8")
    built = build.build(source)
    committed = json.loads((DATA_DIR / "items.json").read_text(encoding="utf-8"))
    assert built == committed, "items.json is stale: run scripts/build_knowledge.py"
