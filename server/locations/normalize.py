"""Turn the public collection-point files into one validated, de-duplicated list of points.

This is the single normaliser behind both ways data gets in: ``scripts/build_locations_snapshot.py``
runs it over the raw files to produce the packaged snapshot, and ``wastecoach locations import
--source DIR`` runs it over a raw directory directly. It is pure (files in, records and a report
out, no database), so it is tested without one.

The raw files and their quirks (see ``/work/shared/data/README.md`` at build time):

* coordinates arrive as strings, some empty, some truncated (``5.1571039``), some swapped;
* the two clothing-bin files and the two zero-waste lists overlap, and some municipalities
  geocode many bins onto one spot, so the same bin can appear several times;
* "accepted items" are free text in Korean and are mapped onto our streams by keyword.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.streams import Stream
from server.locations.geo import haversine_m
from server.locations.streams import catalog

#: Rough bounding box of South Korea, islands included (Marado to the DMZ, Baengnyeong to
#: Dokdo). A point outside it is a data error, not a place we serve.
KOREA_LAT = (33.0, 39.0)
KOREA_LON = (124.0, 132.0)

#: Two records of one kind with the same normalised name closer than this are one place.
#: Map exports of shops geocode to the building entrance or the parcel centre, hence the
#: wider radius for shops.
MERGE_RADIUS_M: dict[str, float] = {"zero_waste_shop": 150.0}
DEFAULT_MERGE_RADIUS_M = 30.0

SNAPSHOT_FORMAT = "wastecoach.locations"
SNAPSHOT_VERSION = 1

# Raw files, in order of preference: when two records are merged, the one from the earlier
# source is kept and the later one fills its gaps. The national standard data comes before
# the API crawl; the Seoul list (hours, items) before the bare map export.
RAW_FILES = (
    "lamp_battery_bins.json",
    "medicine_bins.json",
    "clothing_bins.json",
    "clothes_bins.json",
    "recycle_centers.json",
    "seoul_zero_waste_shops.geojson",
    "keco_sites_and_zero_waste_shops.csv.gz",
)


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class PointRecord:
    """One collection point in the normalised schema (one row of ``collection_points``)."""

    kind: str
    name: str
    address: str | None
    lat: float
    lon: float
    hours: str | None
    accepts: list[Stream]
    source: str
    source_id: str
    extra: dict[str, Any] = field(default_factory=dict)
    merged_sources: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.source}:{self.source_id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "address": self.address,
            "lat": self.lat,
            "lon": self.lon,
            "hours": self.hours,
            "accepts": [s.value for s in self.accepts],
            "source": self.source,
            "source_id": self.source_id,
            "extra": self.extra,
            "merged_sources": self.merged_sources,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PointRecord:
        return cls(
            kind=str(raw["kind"]),
            name=str(raw["name"]),
            address=raw.get("address"),
            lat=float(raw["lat"]),
            lon=float(raw["lon"]),
            hours=raw.get("hours"),
            accepts=[Stream(s) for s in raw.get("accepts", [])],
            source=str(raw["source"]),
            source_id=str(raw["source_id"]),
            extra=dict(raw.get("extra") or {}),
            merged_sources=list(raw.get("merged_sources") or []),
        )


@dataclass(frozen=True, slots=True)
class Reject:
    source: str
    reason: str
    detail: str


@dataclass(slots=True)
class Report:
    """What the normaliser kept, merged and dropped, with reasons, for the operator."""

    read: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    merged: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    reject_samples: list[Reject] = field(default_factory=list)

    def reject(self, source: str, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        same = (r for r in self.reject_samples if r.reason == reason and r.source == source)
        if sum(1 for _ in same) < 3:
            self.reject_samples.append(Reject(source, reason, detail))

    def to_json(self) -> dict[str, Any]:
        return {
            "read": dict(self.read),
            "kept": dict(self.kept),
            "repaired": dict(self.repaired),
            "merged": dict(self.merged),
            "rejected": dict(self.rejected),
            "reject_samples": [
                {"source": r.source, "reason": r.reason, "detail": r.detail}
                for r in self.reject_samples
            ],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Report:
        report = cls(
            read=Counter(raw.get("read", {})),
            kept=Counter(raw.get("kept", {})),
            repaired=Counter(raw.get("repaired", {})),
            merged=Counter(raw.get("merged", {})),
            rejected=Counter(raw.get("rejected", {})),
        )
        report.reject_samples = [Reject(**r) for r in raw.get("reject_samples", [])]
        return report


@dataclass(slots=True)
class _Raw:
    """A source row reduced to the fields every source has, before validation."""

    kind: str
    source: str
    name: str
    address: str | None
    lat: Any
    lon: Any
    hours: str | None = None
    accepts_text: str | None = None
    source_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- small parsers


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = re.sub(r"\s+", " ", str(value)).strip()
    return text or None


def _digest(*parts: Any) -> str:
    joined = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()[:16]


def normalise_name(name: str) -> str:
    """Key for comparing names across files: width, case, spaces and punctuation ignored."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


def in_korea(lat: float, lon: float) -> bool:
    return KOREA_LAT[0] <= lat <= KOREA_LAT[1] and KOREA_LON[0] <= lon <= KOREA_LON[1]


# Compound words first: each is read as a whole and then blanked out, so that its parts do not
# match the plain keywords below (a PET bottle, 페트병, is not a glass bottle, 병; a paper
# pack, 종이팩, is not paper).
_COMPOUNDS: tuple[tuple[re.Pattern[str], tuple[Stream, ...]], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), streams)
    for pattern, streams in (
        (r"(투명|무색)\s*(페트|패트|PET)\s*(병|명)?", (Stream.CLEAR_PET,)),
        (r"(유색\s*)?(페트|패트|PET)\s*(병|명)", (Stream.PLASTIC, Stream.CLEAR_PET)),
        (r"요구르트\s*병|(플라스틱\s*)?병\s*뚜껑", (Stream.PLASTIC,)),
        (r"종이\s*팩|우유\s*팩|멸균\s*팩", (Stream.PAPER_PACK,)),
        (r"철\s*캔|알루미늄\s*캔", (Stream.METAL,)),
    )
)
_KEYWORDS: tuple[tuple[re.Pattern[str], tuple[Stream, ...]], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), streams)
    for pattern, streams in (
        (r"종이|폐지|박스|신문|파지|책|도서", (Stream.PAPER,)),
        (r"유리|병", (Stream.GLASS,)),
        (r"캔|고철|철|알루미늄|금속", (Stream.METAL,)),
        (r"페트|패트|PET", (Stream.PLASTIC, Stream.CLEAR_PET)),
        (r"플라스틱|플리스틱|합성수지|(?<![A-Z])P[EPS](?![A-Z])|즉석밥", (Stream.PLASTIC,)),
        (r"비닐|필름", (Stream.VINYL,)),
        (r"스티로폼", (Stream.STYROFOAM,)),
        (r"의류|헌옷|옷|원단", (Stream.CLOTHING,)),
        (r"가전|전자제품", (Stream.ELECTRONICS,)),
        (r"가구|매트리스", (Stream.BULKY,)),
        (r"전지|배터리", (Stream.BATTERY,)),
        (r"형광|램프|LED|조명", (Stream.LAMP,)),
        (r"의약품", (Stream.MEDICINE,)),
    )
)
_GENERIC_RECYCLABLES = re.compile(r"재활용\s*(품|가능\s*자원|자원)")
_RECYCLABLES = (
    Stream.PAPER,
    Stream.PAPER_PACK,
    Stream.GLASS,
    Stream.METAL,
    Stream.PLASTIC,
    Stream.CLEAR_PET,
    Stream.VINYL,
    Stream.STYROFOAM,
)


def parse_accepts(text: str | None) -> list[Stream]:
    """Streams named in a free-text list of accepted items, in ``Stream`` order."""
    if not text:
        return []
    found: set[Stream] = set()
    if _GENERIC_RECYCLABLES.search(text):
        found.update(_RECYCLABLES)
    rest = text
    for pattern, streams in _COMPOUNDS:
        if pattern.search(rest):
            found.update(streams)
            rest = pattern.sub(" ", rest)
    for pattern, streams in _KEYWORDS:
        if pattern.search(rest):
            found.update(streams)
    return [s for s in Stream if s in found]


_DAYS = (
    ("monSalsHrExplnCn", "월"),
    ("tuesSalsHrExplnCn", "화"),
    ("wedSalsHrExplnCn", "수"),
    ("thurSalsHrExplnCn", "목"),
    ("friSalsHrExplnCn", "금"),
    ("satSalsHrExplnCn", "토"),
    ("sunSalsHrExplnCn", "일"),
)
_CLOSED = re.compile(r"^(휴무|휴일|미운영|없음|-)$")


def keco_hours(row: dict[str, str]) -> str | None:
    """Per-day opening hours joined into one line; runs of days with equal hours grouped."""
    runs: list[tuple[int, int, str]] = []  # (first day, last day, hours)
    for index, (column, _) in enumerate(_DAYS):
        value = _clean(row.get(column))
        if value is None or _CLOSED.match(value):
            continue
        if runs and runs[-1][2] == value and runs[-1][1] == index - 1:
            runs[-1] = (runs[-1][0], index, value)
        else:
            runs.append((index, index, value))
    if not runs:
        return None
    if len(runs) == 1 and runs[0][:2] == (0, 6):
        return f"매일 {runs[0][2]}"
    parts = []
    for first, last, value in runs:
        label = _DAYS[first][1] if first == last else f"{_DAYS[first][1]}~{_DAYS[last][1]}"
        parts.append(f"{label} {value}")
    return ", ".join(parts)


def centre_hours(row: dict[str, Any]) -> str | None:
    opens, closes = _clean(row.get("weekdayOpen")), _clean(row.get("weekdayClose"))
    if not opens or not closes or opens == closes:
        return None
    text = f"평일 {opens}~{closes}"
    h_open, h_close = _clean(row.get("holidayOpen")), _clean(row.get("holidayClose"))
    if h_open and h_close and h_open != h_close:
        text += f", 휴일 {h_open}~{h_close}"
    closed = _clean(row.get("closedDays"))
    if closed:
        text += f" (휴무: {closed.replace('+', ', ')})"
    return text


# --------------------------------------------------------------------------- sources


def _read_grouped_bins(path: Path, *, kind: str, source: str) -> Iterator[_Raw]:
    """The 행정안전부 standard-data files: ``data.<sigungu code>.bins[]``."""
    payload = json.loads(path.read_text("utf-8"))
    for code, group in payload["data"].items():
        for row in group["bins"]:
            name = _clean(row.get("place")) or ""
            address = _clean(row.get("addr"))
            extra: dict[str, Any] = {"sigungu_code": code}
            if phone := _clean(row.get("phone")):
                extra["phone"] = phone
            items = _clean(row.get("items"))
            if items:
                extra["items"] = items
            yield _Raw(
                kind=kind,
                source=source,
                name=name,
                address=address,
                lat=row.get("lat"),
                lon=row.get("lot"),
                accepts_text=items,
                source_id=f"{code}-{_digest(name, address, row.get('lat'), row.get('lot'))}",
                extra=extra,
            )


def _read_clothes_api(path: Path) -> Iterator[_Raw]:
    """The data.go.kr crawl: ``data.<sgg code>[]`` with ``lng`` for longitude."""
    payload = json.loads(path.read_text("utf-8"))
    for code, rows in payload["data"].items():
        for row in rows:
            name = _clean(row.get("name")) or ""
            address = _clean(row.get("address"))
            extra: dict[str, Any] = {"sigungu_code": code}
            for key, out in (("phone", "phone"), ("managedBy", "managed_by")):
                if value := _clean(row.get(key)):
                    extra[out] = value
            yield _Raw(
                kind="clothing_bin",
                source="datagokr_clothes",
                name=name,
                address=address,
                lat=row.get("lat"),
                lon=row.get("lng"),
                source_id=f"{code}-{_digest(name, address, row.get('lat'), row.get('lng'))}",
                extra=extra,
            )


def _read_recycle_centres(path: Path) -> Iterator[_Raw]:
    payload = json.loads(path.read_text("utf-8"))
    for row in payload["data"]:
        name = _clean(row.get("name")) or ""
        address = _clean(row.get("address")) or _clean(row.get("addressJibun"))
        extra: dict[str, Any] = {}
        for key, out in (
            ("phone", "phone"),
            ("homepage", "homepage"),
            ("treatmentItems", "items"),
            ("operationType", "operation"),
            ("sggCode", "sigungu_code"),
        ):
            if value := _clean(row.get(key)):
                extra[out] = value
        yield _Raw(
            kind="recycling_center",
            source="mois_recycle_center",
            name=name,
            address=address,
            lat=row.get("lat"),
            lon=row.get("lng"),
            hours=centre_hours(row),
            accepts_text=_clean(row.get("treatmentItems")),
            source_id=_digest(row.get("sggCode"), name, row.get("addressJibun") or address),
            extra=extra,
        )


def _read_keco_csv(path: Path) -> Iterator[_Raw]:
    with gzip.open(path, "rb") as fh:
        reader = csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8"))
        for row in reader:
            source = _clean(row.get("source"))
            name = _clean(row.get("positnNm")) or ""
            address = _clean(row.get("positnRdnmAddr")) or _clean(row.get("positnLotnoAddr"))
            extra: dict[str, Any] = {}
            if source == "keco":
                for key, out in (
                    ("positnPstnAddExpln", "where"),
                    ("rprsTelnoCn", "phone"),
                    ("lnkgHmpgUrlAddr", "homepage"),
                    ("clctItemCn", "items"),
                    ("etcMttrCn", "note"),
                ):
                    if value := _clean(row.get(key)):
                        extra[out] = value
                yield _Raw(
                    kind="reward_site",
                    source="keco",
                    name=name,
                    address=address,
                    lat=row.get("positnPstnLat"),
                    lon=row.get("positnPstnLot"),
                    hours=keco_hours(row),
                    accepts_text=_clean(row.get("clctItemCn")),
                    source_id=_clean(row.get("source_pk")),
                    extra=extra,
                )
            elif source == "zerowaste":
                yield _Raw(
                    kind="zero_waste_shop",
                    source="zerowaste_map",
                    name=name,
                    address=address,
                    lat=row.get("positnPstnLat"),
                    lon=row.get("positnPstnLot"),
                    source_id=_clean(row.get("source_pk")),
                )
            else:
                yield _Raw(
                    kind="",
                    source=f"csv:{source}",
                    name=name,
                    address=address,
                    lat=None,
                    lon=None,
                )


_PLACEHOLDER = re.compile(r"작성하세요|입력시")
_COLLECTS = re.compile(r"수거|회수|가져오")


def _read_seoul_geojson(path: Path) -> Iterator[_Raw]:
    payload = json.loads(path.read_text("utf-8"))
    for feature in payload["features"]:
        props: dict[str, str] = feature["properties"]
        labelled = {
            props.get(f"NAME_{i:02d}", ""): props.get(f"VALUE_{i:02d}", "") for i in range(1, 21)
        }
        hours = _clean(labelled.get("운영시간"))
        if hours and _PLACEHOLDER.search(hours):
            hours = None
        # Shops sell refills; only what they say they collect ("종이팩 수거") is accepted.
        segments = re.split(r"[|\n\r]", " | ".join(v for v in labelled.values() if v))
        collects = " ".join(s for s in segments if _COLLECTS.search(s)) or None
        extra: dict[str, Any] = {}
        for label, out in (
            ("취급품목(메뉴)", "items"),
            ("제로웨이스트 실천 내용", "activity"),
            ("제로웨이스트 활동내용", "activity"),
        ):
            value = _clean(labelled.get(label))
            if value and not _PLACEHOLDER.search(value):
                extra[out] = value
        if phone := _clean(props.get("TEL_NO")):
            extra["phone"] = phone
        name = _clean(props.get("CONTENTS_NAME")) or ""
        yield _Raw(
            kind="zero_waste_shop",
            source="seoul_zero_waste",
            name=name,
            address=_clean(props.get("ADDR_NEW")) or _clean(props.get("ADDR_OLD")),
            lat=props.get("COORD_Y"),
            lon=props.get("COORD_X"),
            hours=hours,
            accepts_text=collects,
            source_id=_digest(name, props.get("COORD_Y"), props.get("COORD_X")),
            extra=extra,
        )


def read_raw_dir(directory: Path) -> Iterator[_Raw]:
    """Every row of every known file in ``directory``; a missing file is an error."""
    readers = {
        "lamp_battery_bins.json": lambda p: _read_grouped_bins(
            p, kind="lamp_battery_bin", source="mois_lamp_battery"
        ),
        "medicine_bins.json": lambda p: _read_grouped_bins(
            p, kind="medicine_bin", source="mois_medicine"
        ),
        "clothing_bins.json": lambda p: _read_grouped_bins(
            p, kind="clothing_bin", source="mois_clothing"
        ),
        "clothes_bins.json": _read_clothes_api,
        "recycle_centers.json": _read_recycle_centres,
        "keco_sites_and_zero_waste_shops.csv.gz": _read_keco_csv,
        "seoul_zero_waste_shops.geojson": _read_seoul_geojson,
    }
    for filename in RAW_FILES:
        path = directory / filename
        if not path.is_file():
            raise FileNotFoundError(f"{path}: expected raw collection-point file is missing")
        yield from readers[filename](path)


# --------------------------------------------------------------------------- validation


def _coordinate(value: Any) -> float | None:
    text = _clean(value)
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return math.nan
    return number


def validate(raw: _Raw, report: Report) -> PointRecord | None:
    """One raw row as a record, or ``None`` with the reason added to ``report``."""
    label = f"{raw.name or '?'} ({raw.address or 'no address'})"
    kinds = catalog().kinds
    if raw.kind not in kinds:
        report.reject(raw.source, "unknown_source_type", label)
        return None
    lat, lon = _coordinate(raw.lat), _coordinate(raw.lon)
    if lat is None or lon is None:
        report.reject(raw.source, "missing_coordinates", label)
        return None
    if math.isnan(lat) or math.isnan(lon) or math.isinf(lat) or math.isinf(lon):
        report.reject(raw.source, "invalid_coordinates", f"{label}: {raw.lat!r}, {raw.lon!r}")
        return None
    if not in_korea(lat, lon):
        if in_korea(lon, lat):
            lat, lon = lon, lat
            report.repaired["swapped_coordinates"] += 1
        else:
            report.reject(raw.source, "outside_korea", f"{label}: {lat}, {lon}")
            return None
    name = raw.name or raw.address
    if not name:
        report.reject(raw.source, "missing_name_and_address", f"{lat}, {lon}")
        return None
    if not raw.source_id:
        report.reject(raw.source, "missing_source_id", label)
        return None
    # What a point says it takes beats what its kind usually takes: centres range from
    # sorting plants to furniture resellers. Silence means the kind's usual list.
    accepts = parse_accepts(raw.accepts_text) or list(kinds[raw.kind].default_accepts)
    return PointRecord(
        kind=raw.kind,
        name=name,
        address=raw.address,
        lat=round(lat, 7),
        lon=round(lon, 7),
        hours=raw.hours,
        accepts=accepts,
        source=raw.source,
        source_id=raw.source_id,
        extra=raw.extra,
    )


# --------------------------------------------------------------------------- de-duplication


def _same_place(a: PointRecord, b: PointRecord) -> bool:
    radius = MERGE_RADIUS_M.get(a.kind, DEFAULT_MERGE_RADIUS_M)
    if haversine_m(a.lat, a.lon, b.lat, b.lon) > radius:
        return False
    na, nb = normalise_name(a.name), normalise_name(b.name)
    if na == nb:
        return True
    # Shops are listed as "알맹상점" in one file and "알맹상점 망원점" in the other.
    return a.kind == "zero_waste_shop" and min(len(na), len(nb)) >= 2 and (na in nb or nb in na)


def _absorb(keep: PointRecord, other: PointRecord) -> None:
    keep.merged_sources.append(other.id)
    keep.merged_sources.extend(s for s in other.merged_sources if s not in keep.merged_sources)
    keep.address = keep.address or other.address
    keep.hours = keep.hours or other.hours
    keep.accepts = [s for s in Stream if s in keep.accepts or s in other.accepts]
    for key, value in other.extra.items():
        keep.extra.setdefault(key, value)


def dedupe(records: Iterable[PointRecord], report: Report) -> list[PointRecord]:
    """Merge records that are one place; earlier records win (sources are read by preference).

    A grid of cells about 100 m wide bounds the comparisons: a record is only compared with
    records of its kind in its own and the eight neighbouring cells.
    """
    cell = 0.001 * (max(MERGE_RADIUS_M.values(), default=DEFAULT_MERGE_RADIUS_M) // 100 + 1)
    grid: dict[tuple[str, int, int], list[PointRecord]] = {}
    kept: list[PointRecord] = []
    seen_ids: dict[str, PointRecord] = {}
    for record in records:
        if record.id in seen_ids:
            report.merged["identical_row"] += 1
            continue
        cx, cy = int(record.lat // cell), int(record.lon // cell)
        match = None
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for other in grid.get((record.kind, cx + dx, cy + dy), ()):
                    if _same_place(other, record):
                        match = other
                        break
                if match:
                    break
            if match:
                break
        if match is not None:
            reason = "same_source" if match.source == record.source else "across_sources"
            report.merged[f"{record.kind}:{reason}"] += 1
            seen_ids[record.id] = match
            _absorb(match, record)
            continue
        seen_ids[record.id] = record
        grid.setdefault((record.kind, cx, cy), []).append(record)
        kept.append(record)
    return kept


def normalise(raws: Iterable[_Raw]) -> tuple[list[PointRecord], Report]:
    report = Report()
    valid: list[PointRecord] = []
    for raw in raws:
        report.read[raw.source] += 1
        record = validate(raw, report)
        if record is not None:
            valid.append(record)
    records = dedupe(valid, report)
    report.kept.update(r.kind for r in records)
    return records, report


def normalise_dir(directory: Path) -> tuple[list[PointRecord], Report]:
    return normalise(read_raw_dir(directory))


# --------------------------------------------------------------------------- snapshot


def write_snapshot(path: Path, records: list[PointRecord], report: Report) -> None:
    """Write the packaged snapshot: a header line, then one point per line, gzip-compressed.

    Output is byte-for-byte reproducible (sorted, gzip mtime 0) so that regenerating it from
    unchanged inputs leaves git clean.
    """
    header = {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "count": len(records),
        "report": report.to_json(),
    }
    lines = [json.dumps(header, ensure_ascii=False, sort_keys=True)]
    lines.extend(
        json.dumps(r.to_json(), ensure_ascii=False, sort_keys=True)
        for r in sorted(records, key=lambda r: r.id)
    )
    data = ("\n".join(lines) + "\n").encode("utf-8")
    with (
        path.open("wb") as raw_fh,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw_fh, mtime=0, compresslevel=9) as fh,
    ):
        fh.write(data)


def read_snapshot(path: Path) -> tuple[list[PointRecord], Report]:
    """Records of a snapshot, each re-validated, and the report of the build that made it."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        header = json.loads(fh.readline())
        if header.get("format") != SNAPSHOT_FORMAT or header.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"{path}: not a version {SNAPSHOT_VERSION} locations snapshot")
        records = [PointRecord.from_json(json.loads(line)) for line in fh if line.strip()]
    if len(records) != header["count"]:
        raise ValueError(f"{path}: header says {header['count']} points, found {len(records)}")
    for record in records:
        if not in_korea(record.lat, record.lon) or record.kind not in catalog().kinds:
            raise ValueError(f"{path}: point {record.id} fails validation")
    return records, Report.from_json(header["report"])


def packaged_snapshot() -> Path:
    return Path(__file__).parent / "data" / "points.jsonl.gz"
