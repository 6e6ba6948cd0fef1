"""The normaliser on small hand-made source files (exact counts) and on the real data."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest

from protocol.streams import Stream
from server.locations.geo import haversine_m
from server.locations.normalize import (
    RAW_FILES,
    PointRecord,
    centre_hours,
    in_korea,
    keco_hours,
    normalise_dir,
    normalise_name,
    packaged_snapshot,
    parse_accepts,
    read_snapshot,
    write_snapshot,
)
from tests.locations.conftest import SHARED_LOCATIONS

KECO_COLUMNS = [
    "source",
    "source_pk",
    "positnNm",
    "positnLotnoAddr",
    "positnRdnmAddr",
    "positnPstnLat",
    "positnPstnLot",
    "monSalsHrExplnCn",
    "tuesSalsHrExplnCn",
    "wedSalsHrExplnCn",
    "thurSalsHrExplnCn",
    "friSalsHrExplnCn",
    "satSalsHrExplnCn",
    "sunSalsHrExplnCn",
    "clctItemCn",
]


def _bins(code: str, rows: list[dict[str, str]]) -> dict[str, object]:
    return {"data": {code: {"name": "서울특별시 중구", "bins": rows}}}


def write_raw_dir(root: Path) -> Path:
    """A raw directory in the shapes of the real files, with one of each kind of fault."""
    (root / "lamp_battery_bins.json").write_text(
        json.dumps(
            _bins(
                "11140",
                [
                    {
                        "place": "소공동 주민센터",
                        "addr": "서울 중구 세종대로 1",
                        "lat": "37.5640",
                        "lot": "126.9790",
                        "items": "폐형광등+폐건전지",
                    },
                    # swapped coordinates: repaired, not dropped
                    {
                        "place": "회현동 주민센터",
                        "addr": "서울 중구 소공로 2",
                        "lat": "126.9800",
                        "lot": "37.5580",
                        "items": "폐건전지",
                    },
                    {"place": "빈 좌표", "addr": "서울 중구 어딘가", "lat": "", "lot": ""},
                    {
                        "place": "숫자 아님",
                        "addr": "서울 중구 어딘가 2",
                        "lat": "abc",
                        "lot": "126.9",
                    },
                ],
            )
        ),
        "utf-8",
    )
    (root / "medicine_bins.json").write_text(
        json.dumps(
            _bins(
                "11140",
                [
                    {
                        "place": "시청약국",
                        "addr": "서울 중구 세종대로 3",
                        "lat": "37.5660",
                        "lot": "126.9770",
                    },
                    # the very same row twice
                    {
                        "place": "시청약국",
                        "addr": "서울 중구 세종대로 3",
                        "lat": "37.5660",
                        "lot": "126.9770",
                    },
                    # outside Korea (a truncated latitude)
                    {"place": "먼 약국", "addr": "어딘가", "lat": "5.1571", "lot": "126.93"},
                ],
            )
        ),
        "utf-8",
    )
    (root / "clothing_bins.json").write_text(
        json.dumps(
            _bins(
                "11140",
                [
                    {
                        "place": "덕수궁 옆",
                        "addr": "서울 중구 세종대로 99",
                        "lat": "37.56580",
                        "lot": "126.97510",
                    },
                    {
                        "place": "정동길",
                        "addr": "서울 중구 정동길 1",
                        "lat": "37.56700",
                        "lot": "126.97000",
                    },
                    {"place": "", "addr": "", "lat": "37.5600", "lot": "126.9700"},
                ],
            )
        ),
        "utf-8",
    )
    (root / "clothes_bins.json").write_text(
        json.dumps(
            {
                "data": {
                    "3010000": [
                        # the same bin as "덕수궁 옆" in the other file, 5 m away: merged
                        {
                            "name": "덕수궁옆",
                            "address": "서울특별시 중구 세종대로 99",
                            "lat": "37.56584",
                            "lng": "126.97512",
                            "phone": None,
                            "managedBy": "중구청",
                        },
                        # same name, 500 m away: a different bin
                        {
                            "name": "정동길",
                            "address": "서울 중구 정동길 50",
                            "lat": "37.57150",
                            "lng": "126.97000",
                            "phone": None,
                            "managedBy": "중구청",
                        },
                    ]
                }
            }
        ),
        "utf-8",
    )
    (root / "recycle_centers.json").write_text(
        json.dumps(
            {
                "data": [
                    {
                        "name": "중구 재활용센터",
                        "sggCode": "11140",
                        "address": "서울 중구 퇴계로 10",
                        "addressJibun": "",
                        "lat": "37.5610",
                        "lng": "126.9820",
                        "treatmentItems": "가전제품+가구류",
                        "phone": "02-000-0000",
                        "weekdayOpen": "09:00",
                        "weekdayClose": "18:00",
                        "holidayOpen": "00:00",
                        "holidayClose": "00:00",
                        "closedDays": "토요일+공휴일",
                        "homepage": "",
                    },
                ]
            }
        ),
        "utf-8",
    )
    (root / "seoul_zero_waste_shops.geojson").write_text(
        json.dumps(
            {
                "features": [
                    {
                        "properties": {
                            "CONTENTS_NAME": "알맹상점",
                            "ADDR_NEW": "서울 마포구 월드컵로 49",
                            "ADDR_OLD": "",
                            "COORD_X": "126.9080",
                            "COORD_Y": "37.5560",
                            "TEL_NO": "",
                            "NAME_01": "운영시간",
                            "VALUE_01": "화~일 12:00~20:00",
                            "NAME_02": "제로웨이스트 실천 내용",
                            "VALUE_02": "리필스테이션|종이팩 수거",
                        }
                    },
                ]
            }
        ),
        "utf-8",
    )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=KECO_COLUMNS)
    writer.writeheader()
    closed = {c: "휴무" for c in KECO_COLUMNS if c.endswith("SalsHrExplnCn")}
    writer.writerow(
        {
            **closed,
            "source": "keco",
            "source_pk": "7",
            "positnNm": "중구 자원순환가게",
            "positnRdnmAddr": "서울 중구 을지로 5",
            "positnPstnLat": "37.5660",
            "positnPstnLot": "126.9850",
            "tuesSalsHrExplnCn": "10:00 ~ 12:00",
            "wedSalsHrExplnCn": "10:00 ~ 12:00",
            "clctItemCn": "투명페트병\n캔",
        }
    )
    writer.writerow(
        {
            **closed,
            "source": "keco",
            "source_pk": "8",
            "positnNm": "좌표 없음",
            "positnPstnLat": "",
            "positnPstnLot": "",
        }
    )
    # the Seoul shop again, from the map export, 40 m away and with a branch suffix: merged
    writer.writerow(
        {
            **closed,
            "source": "zerowaste",
            "source_pk": "99",
            "positnNm": "알맹상점 망원점",
            "positnRdnmAddr": "서울 마포구 월드컵로 49",
            "positnPstnLat": "37.55635",
            "positnPstnLot": "126.9081",
        }
    )
    with gzip.open(root / "keco_sites_and_zero_waste_shops.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(buffer.getvalue())
    assert sorted(p.name for p in root.iterdir()) == sorted(RAW_FILES)
    return root


def test_small_sources_are_validated_merged_and_reported(tmp_path: Path) -> None:
    records, report = normalise_dir(write_raw_dir(tmp_path))

    assert sum(report.read.values()) == 17
    assert dict(report.rejected) == {
        "missing_coordinates": 2,
        "invalid_coordinates": 1,
        "outside_korea": 1,
        "missing_name_and_address": 1,
    }
    assert dict(report.repaired) == {"swapped_coordinates": 1}
    assert dict(report.merged) == {
        "identical_row": 1,
        "clothing_bin:across_sources": 1,
        "zero_waste_shop:across_sources": 1,
    }
    assert dict(report.kept) == {
        "lamp_battery_bin": 2,
        "medicine_bin": 1,
        "clothing_bin": 3,
        "recycling_center": 1,
        "reward_site": 1,
        "zero_waste_shop": 1,
    }
    # Every row read is accounted for exactly once.
    merged = sum(report.merged.values())
    assert sum(report.read.values()) == len(records) + merged + sum(report.rejected.values())
    assert {s.reason for s in report.reject_samples} == set(report.rejected)

    by_name = {r.name: r for r in records}
    swapped = by_name["회현동 주민센터"]
    assert (swapped.lat, swapped.lon) == (37.558, 126.98)
    assert swapped.accepts == [Stream.BATTERY]
    assert by_name["소공동 주민센터"].accepts == [Stream.BATTERY, Stream.LAMP]

    bin_ = by_name["덕수궁 옆"]
    assert bin_.source == "mois_clothing"  # the national standard data wins
    assert len(bin_.merged_sources) == 1 and bin_.merged_sources[0].startswith("datagokr_clothes:")
    assert bin_.extra["managed_by"] == "중구청"  # the merged record fills the gaps

    shop = by_name["알맹상점"]
    assert shop.merged_sources == ["zerowaste_map:99"]
    assert shop.hours == "화~일 12:00~20:00"
    assert shop.accepts == [Stream.PAPER_PACK]

    centre = by_name["중구 재활용센터"]
    assert centre.accepts == [Stream.ELECTRONICS, Stream.BULKY]
    assert centre.hours == "평일 09:00~18:00 (휴무: 토요일, 공휴일)"

    site = by_name["중구 자원순환가게"]
    assert site.id == "keco:7"
    assert site.hours == "화~수 10:00 ~ 12:00"
    assert site.accepts == [Stream.METAL, Stream.CLEAR_PET]


def test_ids_are_stable_across_runs(tmp_path: Path) -> None:
    first, _ = normalise_dir(write_raw_dir(tmp_path))
    second, _ = normalise_dir(tmp_path)
    assert [r.id for r in first] == [r.id for r in second]
    assert len({r.id for r in first}) == len(first)


def test_missing_raw_file_is_an_error(tmp_path: Path) -> None:
    write_raw_dir(tmp_path)
    (tmp_path / "medicine_bins.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"medicine_bins\.json"):
        normalise_dir(tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("종이팩", [Stream.PAPER_PACK]),
        ("종이류+종이팩", [Stream.PAPER, Stream.PAPER_PACK]),
        ("투명페트병", [Stream.CLEAR_PET]),
        ("유색페트병", [Stream.PLASTIC, Stream.CLEAR_PET]),
        ("유리병", [Stream.GLASS]),
        ("요구르트병", [Stream.PLASTIC]),
        ("폐형광등+폐LED+폐전지류", [Stream.BATTERY, Stream.LAMP]),
        ("가전제품+가구 등", [Stream.ELECTRONICS, Stream.BULKY]),
        ("플라스틱(PE)\n알루미늄 캔", [Stream.METAL, Stream.PLASTIC]),
        ("식당용품", []),
        (None, []),
    ],
)
def test_parse_accepts(text: str | None, expected: list[Stream]) -> None:
    assert parse_accepts(text) == expected


def test_parse_accepts_generic_recyclables() -> None:
    streams = parse_accepts("재활용품 선별")
    assert Stream.PAPER in streams and Stream.STYROFOAM in streams
    assert Stream.MEDICINE not in streams and Stream.CLOTHING not in streams


def test_hours() -> None:
    days = ["mon", "tues", "wed", "thur", "fri", "sat", "sun"]
    every = {f"{d}SalsHrExplnCn": "09:00~18:00" for d in days}
    assert keco_hours(every) == "매일 09:00~18:00"
    split = dict(every, satSalsHrExplnCn="10:00~13:00", sunSalsHrExplnCn="휴무")
    assert keco_hours(split) == "월~금 09:00~18:00, 토 10:00~13:00"
    assert keco_hours({f"{d}SalsHrExplnCn": "휴무" for d in days}) is None
    assert centre_hours({"weekdayOpen": "00:00", "weekdayClose": "00:00"}) is None


@pytest.mark.skipif(not SHARED_LOCATIONS.is_dir(), reason="../shared/data is not present")
def test_real_data_and_packaged_snapshot_agree(tmp_path: Path) -> None:
    records, report = normalise_dir(SHARED_LOCATIONS)

    assert sum(report.read.values()) > 23_000
    for kind in (
        "clothing_bin",
        "lamp_battery_bin",
        "medicine_bin",
        "recycling_center",
        "reward_site",
        "zero_waste_shop",
    ):
        assert report.kept[kind] > 0, kind
    assert report.rejected["missing_coordinates"] > 0
    assert report.rejected["outside_korea"] > 0
    # The two clothing-bin files overlap heavily; the overlap must be merged, not doubled.
    assert report.merged["clothing_bin:across_sources"] > 1_000
    merged = sum(report.merged.values())
    assert sum(report.read.values()) == len(records) + merged + sum(report.rejected.values())
    assert all(in_korea(r.lat, r.lon) for r in records)

    # The committed snapshot is what the build script makes from the shared data today.
    packaged, packaged_report = read_snapshot(packaged_snapshot())
    assert [r.to_json() for r in sorted(records, key=lambda r: r.id)] == [
        r.to_json() for r in packaged
    ]
    assert packaged_report.to_json() == report.to_json()

    # ... and writing it is reproducible byte for byte.
    out = tmp_path / "points.jsonl.gz"
    write_snapshot(out, records, report)
    assert out.read_bytes() == packaged_snapshot().read_bytes()


def test_no_two_points_of_a_kind_share_a_name_within_merge_radius(
    snapshot_records: list[PointRecord],
) -> None:
    seen: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in snapshot_records:
        key = (r.kind, normalise_name(r.name))
        for lat, lon in seen.get(key, []):
            assert haversine_m(lat, lon, r.lat, r.lon) > 30, r.id
        seen.setdefault(key, []).append((r.lat, r.lon))
