"""The shipped 시군구 boundaries: known places land in their district, the sea and abroad in
none, the 2022 codes meet the current ones, and an altered file is refused at load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from server.regions.districts import (
    BOUNDARIES_FILE,
    DATA_DIR,
    MANIFEST_FILE,
    DistrictDataError,
    DistrictIndex,
    current_code,
    get_district_index,
    load,
)

SOURCE = Path(__file__).resolve().parents[2].parent / "shared/data/regions/sigungu_2022.geojson"


@pytest.fixture(scope="module")
def index() -> DistrictIndex:
    return get_district_index()


def test_all_250_districts_load(index: DistrictIndex) -> None:
    assert len(index) == 250
    assert len({d.code for d in index.districts}) == 250


# City and county halls (WGS84), and the district each stands in.
HALLS = [
    ("서울시청", 37.5663, 126.9779, "11140", "서울특별시 중구"),
    ("강남구청", 37.5172, 127.0473, "11680", "서울특별시 강남구"),
    ("부산시청", 35.1798, 129.0750, "26470", "부산광역시 연제구"),
    ("세종시청", 36.4800, 127.2890, "36110", "세종특별자치시"),
    ("수원시청", 37.2636, 127.0286, "41115", "경기도 수원시 팔달구"),
    ("춘천시청", 37.8813, 127.7298, "51110", "강원특별자치도 춘천시"),
    ("전주시청", 35.8242, 127.1480, "52111", "전북특별자치도 전주시 완산구"),
    ("군위군청", 36.2428, 128.5728, "27720", "대구광역시 군위군"),
    ("제주시청", 33.4996, 126.5312, "50110", "제주특별자치도 제주시"),
    ("서귀포시청", 33.2541, 126.5601, "50130", "제주특별자치도 서귀포시"),
    ("울릉군청", 37.4845, 130.9057, "47940", "경상북도 울릉군"),
]


@pytest.mark.parametrize(("place", "lat", "lon", "code", "name"), HALLS)
def test_halls_are_in_their_district(
    index: DistrictIndex, place: str, lat: float, lon: float, code: str, name: str
) -> None:
    placed = index.place(lat, lon)
    assert placed.district is not None, place
    assert (placed.district.code, placed.district.full_name) == (code, name), place
    assert placed.how == "inside"


def test_renamed_provinces_keep_their_2022_code(index: DistrictIndex) -> None:
    chuncheon = index.lookup(37.8813, 127.7298)
    assert chuncheon is not None
    assert (chuncheon.code, chuncheon.code_2022, chuncheon.short_name) == (
        "51110",
        "42110",
        "강원 춘천시",
    )
    # Data keyed by either spelling finds the same district.
    assert index.by_code("42110") is chuncheon
    assert index.by_code("51110") is chuncheon
    assert index.by_code("47720") is index.by_code("27720")
    assert current_code("45113") == "52113"
    assert current_code("11680") == "11680"


def test_points_either_side_of_a_boundary(index: DistrictIndex) -> None:
    # The 탄천 between 강남구 (west bank) and 송파구 (east bank), a few hundred metres apart:
    # 코엑스 and 종합운동장.
    coex = index.lookup(37.5116, 127.0593)
    stadium = index.lookup(37.5153, 127.0728)
    assert coex is not None and coex.code == "11680"
    assert stadium is not None and stadium.code == "11710"


@pytest.mark.parametrize(
    ("where", "lat", "lon"),
    [
        ("between the mainland and Jeju", 34.0, 127.0),
        ("the Yellow Sea", 37.0, 125.0),
        ("the East Sea", 37.5, 130.0),
        ("Tokyo", 35.6812, 139.7671),
        ("Pyongyang", 39.0392, 125.7625),
        ("the other side of the world", -33.8688, 151.2093),
    ],
)
def test_the_sea_and_abroad_are_in_no_district(
    index: DistrictIndex, where: str, lat: float, lon: float
) -> None:
    placed = index.place(lat, lon)
    assert placed.district is None, where
    assert placed.how == "outside"


def test_a_point_just_off_the_coast_snaps_to_the_nearest_district(index: DistrictIndex) -> None:
    # 독도 is a few rocks the simplified coast barely keeps: a fix beside them is 울릉군's.
    placed = index.place(37.2422, 131.8668)
    assert placed.district is not None and placed.district.code == "47940"


@pytest.mark.skipif(not SOURCE.exists(), reason="needs ../shared/data/regions")
def test_shipped_polygons_agree_with_the_source_at_known_points(index: DistrictIndex) -> None:
    """Every source polygon's representative point (inside it by construction) lands in that
    district with the simplified, quantised polygons."""
    import shapely

    doc = json.loads(SOURCE.read_text(encoding="utf-8"))
    wrong = []
    for feature in doc["features"]:
        inside = shapely.geometry.shape(feature["geometry"]).representative_point()
        placed = index.lookup(inside.y, inside.x)
        if placed is None or placed.code_2022 != feature["properties"]["sgg"]:
            wrong.append(feature["properties"]["sgg"])
    assert wrong == []


# --------------------------------------------------------------------------- integrity


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    for name in (BOUNDARIES_FILE, MANIFEST_FILE):
        shutil.copy(DATA_DIR / name, tmp_path / name)
    return tmp_path


def test_a_copy_loads(data_copy: Path) -> None:
    assert len(load(data_copy)) == 250


def test_an_altered_file_is_refused_with_a_clear_error(data_copy: Path) -> None:
    path = data_copy / BOUNDARIES_FILE
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DistrictDataError, match=r"SHA-256 .* expects .*altered or truncated"):
        load(data_copy)


def test_a_truncated_file_is_refused(data_copy: Path) -> None:
    path = data_copy / BOUNDARIES_FILE
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DistrictDataError, match="altered or truncated"):
        load(data_copy)


def test_a_missing_manifest_is_refused(data_copy: Path) -> None:
    (data_copy / MANIFEST_FILE).unlink()
    with pytest.raises(DistrictDataError, match=r"district manifest .* cannot read"):
        load(data_copy)


def test_a_manifest_without_a_checksum_is_refused(data_copy: Path) -> None:
    (data_copy / MANIFEST_FILE).write_text(json.dumps({"count": 250}), encoding="utf-8")
    with pytest.raises(DistrictDataError, match="lacks 'sha256'"):
        load(data_copy)
