"""Which 시군구 (district) a WGS84 point lies in, from the boundaries shipped with the product.

District rules differ (Jeju collects each recyclable on its own days, for one), so a scan or a
question with a location is coached with its district's rule where one exists. The boundaries
are data in ``server/regions/data/``: ``sigungu.json.gz`` (the 250 districts of 2022, polygons
simplified and quantised by ``scripts/build_districts.py``) and ``sigungu.manifest.json`` (its
SHA-256, source and credit). Loading refuses a file whose checksum does not match the manifest:
a truncated or edited boundary file must stop a deploy, not send a person in one district to
another district's rule.

Lookup is in memory (shapely 2, an STRtree over the polygons), the same code in embedded and
distributed mode: no database extension is needed and a lookup costs microseconds.

Codes: the boundaries carry the 2022 행정안전부 codes. Since then 강원 (42xxx) became 51xxx
(2023-06-11), 전북 (45xxx) became 52xxx (2024-01-18), and 군위군 moved from 경북 (47720) to
대구 (27720, 2023-07-01). A :class:`District` reports the current code and name and keeps the
2022 code; :func:`current_code` maps either spelling to the current one, so data keyed by old
codes (the collection-point files) and by new ones (district rules) meet.

Boundaries: vuski/admdongkor (statistics-office boundaries as of 2022-03), credited as its
author asks; see ``ATTRIBUTION`` and the manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import shapely
from shapely import STRtree

from server.errors import WasteCoachError

DATA_DIR = Path(__file__).parent / "data"
BOUNDARIES_FILE = "sigungu.json.gz"
MANIFEST_FILE = "sigungu.manifest.json"
FORMAT = "wastecoach.sigungu/1"

#: Coordinates are stored as integers of this many degrees (about 1.1 m of latitude).
QUANTUM_DEG = 1e-5
#: A point outside every polygon but this close to one (degrees; about 300 m) is placed in the
#: nearest district: the simplified coast runs up to a few tens of metres inside the real one,
#: and a phone's fix on a pier or a beach is often that far off. Farther out is at sea.
SNAP_DEG = 0.003

ATTRIBUTION = (
    "시군구 boundaries: vuski/admdongkor (https://github.com/vuski/admdongkor), "
    "통계청 boundaries as of 2022-03"
)

#: 2022 province prefix → the current one (강원특별자치도 2023-06-11, 전북특별자치도 2024-01-18).
_RENAMED_PROVINCES: Mapping[str, str] = MappingProxyType({"42": "51", "45": "52"})
#: Single districts whose code changed with their province (군위군: 경북 → 대구, 2023-07-01).
_MOVED_DISTRICTS: Mapping[str, str] = MappingProxyType({"47720": "27720"})
#: The province names in force now, for the 2022 names the boundaries carry.
_PROVINCE_NAMES: Mapping[str, str] = MappingProxyType(
    {"강원도": "강원특별자치도", "전라북도": "전북특별자치도"}
)
_MOVED_PROVINCE: Mapping[str, str] = MappingProxyType({"27720": "대구광역시"})
#: Short province names, as people write them before a district ("서울 강남구").
_SHORT_PROVINCE: Mapping[str, str] = MappingProxyType(
    {
        "서울특별시": "서울",
        "부산광역시": "부산",
        "대구광역시": "대구",
        "인천광역시": "인천",
        "광주광역시": "광주",
        "대전광역시": "대전",
        "울산광역시": "울산",
        "세종특별자치시": "세종",
        "경기도": "경기",
        "강원특별자치도": "강원",
        "충청북도": "충북",
        "충청남도": "충남",
        "전북특별자치도": "전북",
        "전라남도": "전남",
        "경상북도": "경북",
        "경상남도": "경남",
        "제주특별자치도": "제주",
    }
)
#: "수원시장안구" → "수원시 장안구": a city's 일반구 is written after the city with a space.
_CITY_WARD = re.compile(r"^(\S+?시)(\S+구)$")


class DistrictDataError(WasteCoachError):
    """The shipped district boundaries are missing, altered or malformed."""


def current_code(code: str) -> str:
    """The code in force now for a 5-digit 시군구 code of 2022 or later (either spelling)."""
    if code in _MOVED_DISTRICTS:
        return _MOVED_DISTRICTS[code]
    prefix = _RENAMED_PROVINCES.get(code[:2])
    return prefix + code[2:] if prefix is not None else code


@dataclass(frozen=True, slots=True)
class District:
    """One 시군구, by its current code and name."""

    code: str
    #: The code in the 2022 boundaries (differs for 강원, 전북 and 군위군).
    code_2022: str
    province: str
    name: str

    @property
    def full_name(self) -> str:
        """The official name: "서울특별시 강남구", "세종특별자치시"."""
        return self.name if self.name == self.province else f"{self.province} {self.name}"

    @property
    def short_name(self) -> str:
        """How people say it: "서울 강남구", "경기 수원시 장안구", "세종"."""
        short = _SHORT_PROVINCE.get(self.province, self.province)
        return short if self.name == self.province else f"{short} {self.name}"


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a point fell: a district, or none (at sea, abroad) with the reason."""

    district: District | None
    #: ``inside``, ``near`` (snapped to a district within ``SNAP_DEG``), or ``outside``.
    how: str


class DistrictIndex:
    """The districts and their polygons, with a point lookup; read-only, thread-safe."""

    def __init__(self, districts: Sequence[District], polygons: Sequence[Any]) -> None:
        if len(districts) != len(polygons):
            raise ValueError("one polygon per district")
        self.districts: tuple[District, ...] = tuple(districts)
        self._polygons = np.asarray(polygons, dtype=object)
        self._boundaries = shapely.boundary(self._polygons)
        self._tree = STRtree(self._polygons)
        self._by_code: Mapping[str, District] = MappingProxyType(
            {d.code: d for d in self.districts}
        )

    def __len__(self) -> int:
        return len(self.districts)

    def by_code(self, code: str) -> District | None:
        """The district of a 2022 or current code."""
        return self._by_code.get(current_code(code))

    def place(self, lat: float, lon: float) -> Placement:
        """The district that contains the point, else one within ``SNAP_DEG``, else none."""
        point = shapely.Point(lon, lat)
        hits = self._tree.query(point, predicate="intersects")
        if len(hits) == 1:
            return Placement(self.districts[int(hits[0])], "inside")
        if len(hits) > 1:
            # Neighbouring polygons may overlap by a sliver where the source's edges did not
            # meet exactly: the district the point lies deepest inside wins.
            depth = shapely.distance(self._boundaries[hits], point)
            return Placement(self.districts[int(hits[int(np.argmax(depth))])], "inside")
        near = self._tree.query_nearest(point, max_distance=SNAP_DEG)
        if len(near):
            return Placement(self.districts[int(near[0])], "near")
        return Placement(None, "outside")

    def lookup(self, lat: float, lon: float) -> District | None:
        return self.place(lat, lon).district


# --------------------------------------------------------------------------- the data file


def from_source(code_2022: str, province_2022: str, name: str) -> District:
    code = current_code(code_2022)
    province = _MOVED_PROVINCE.get(code) or _PROVINCE_NAMES.get(province_2022, province_2022)
    ward = _CITY_WARD.match(name)
    if ward is not None:
        name = f"{ward.group(1)} {ward.group(2)}"
    return District(code=code, code_2022=code_2022, province=province, name=name)


def decode_rings(parts: list[list[list[int]]]) -> Any:
    """One district's polygons from their delta-encoded integer rings."""
    polygons = []
    for rings in parts:
        coords = []
        for flat in rings:
            deltas = np.asarray(flat, dtype=np.int64).reshape(-1, 2)
            coords.append(np.cumsum(deltas, axis=0) * QUANTUM_DEG)
        polygons.append(shapely.Polygon(coords[0], coords[1:]))
    return polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)


def encode_rings(geometry: Any) -> list[list[list[int]]]:
    """The inverse of :func:`decode_rings`: each ring as integer deltas, x and y interleaved."""
    polygons = [geometry] if geometry.geom_type == "Polygon" else list(geometry.geoms)
    parts = []
    for polygon in polygons:
        rings = []
        for ring in (polygon.exterior, *polygon.interiors):
            fixed = np.round(np.asarray(ring.coords) / QUANTUM_DEG).astype(np.int64)
            deltas = np.diff(fixed, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
            rings.append([int(v) for v in deltas.ravel()])
        parts.append(rings)
    return parts


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load(directory: Path | None = None) -> DistrictIndex:
    """Read the shipped boundaries, check them against the manifest, build the index."""
    folder = directory or DATA_DIR
    manifest = _manifest(folder / MANIFEST_FILE)
    path = folder / BOUNDARIES_FILE
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DistrictDataError(f"district boundaries {path}: cannot read ({exc})") from exc
    actual = sha256_hex(raw)
    if actual != manifest["sha256"]:
        raise DistrictDataError(
            f"district boundaries {path} have SHA-256 {actual}, but {MANIFEST_FILE} expects "
            f"{manifest['sha256']}: the file was altered or truncated; rebuild it with "
            "scripts/build_districts.py"
        )
    try:
        doc = json.loads(gzip.decompress(raw))
        if doc.get("format") != FORMAT:
            raise DistrictDataError(f"{path}: format {doc.get('format')!r}, expected {FORMAT!r}")
        districts, polygons = [], []
        for record in doc["districts"]:
            districts.append(from_source(record["sgg"], record["sido"], record["name"]))
            polygons.append(decode_rings(record["rings"]))
    except DistrictDataError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise DistrictDataError(f"district boundaries {path} are malformed: {exc!r}") from exc
    if len(districts) != manifest["count"]:
        raise DistrictDataError(
            f"{path} holds {len(districts)} districts, the manifest says {manifest['count']}"
        )
    return DistrictIndex(districts, polygons)


def _manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DistrictDataError(f"district manifest {path}: cannot read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise DistrictDataError(f"district manifest {path} is not valid JSON: {exc}") from exc
    if (
        not isinstance(manifest, dict)
        or not isinstance(manifest.get("sha256"), str)
        or not isinstance(manifest.get("count"), int)
    ):
        raise DistrictDataError(f"district manifest {path} lacks 'sha256' or 'count'")
    return manifest


@lru_cache(maxsize=1)
def get_district_index() -> DistrictIndex:
    """The shipped boundaries, loaded and checked once per process (about half a second)."""
    return load()
