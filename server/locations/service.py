"""The locations domain's operations: nearest search, one place, suggestions for a scan, import.

Endpoints, the scan stage and the CLI all call these; every query lives in
:mod:`server.locations.repository`, and the caller's session commits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from protocol.messages import Locale, Place
from protocol.streams import Stream
from server.locations import repository
from server.locations.errors import InvalidSearch, PointNotFound
from server.locations.geo import haversine_m
from server.locations.links import route_links
from server.locations.normalize import KOREA_LAT, KOREA_LON, PointRecord, in_korea
from server.locations.streams import FALLBACK_KIND, accepts_mask, catalog, stream_bit

#: Results are nearest first, so the radius only bounds how far to look; lamp and battery bins
#: are sparse (the nearest to Seoul City Hall is 17 km away), hence the generous default.
DEFAULT_RADIUS_M = 20_000.0
#: A walk or a short drive; beyond this "nearby" stops meaning anything, and the box the
#: search reads grows with the square of it.
MAX_RADIUS_M = 20_000.0
DEFAULT_LIMIT = 5
MAX_LIMIT = 50
#: How far the scan looks for the fallback recycling centre when nothing closer takes the item.
FALLBACK_RADIUS_M = 50_000.0


def _check_query(lat: float, lon: float, radius_m: float, limit: int) -> None:
    if not in_korea(lat, lon):
        raise InvalidSearch(
            f"({lat}, {lon}) is outside the service area: latitude must be within "
            f"{KOREA_LAT[0]}..{KOREA_LAT[1]} and longitude within {KOREA_LON[0]}..{KOREA_LON[1]}"
        )
    if not 0 < radius_m <= MAX_RADIUS_M:
        raise InvalidSearch(f"radius must be greater than 0 and at most {MAX_RADIUS_M:.0f} m")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidSearch(f"limit must be between 1 and {MAX_LIMIT}")


def to_place(point: repository.PointFields, distance_m: float) -> Place:
    return Place(
        id=point.id,
        kind=point.kind,
        name=point.name,
        address=point.address,
        lat=point.lat,
        lon=point.lon,
        distance_m=round(distance_m, 1),
        hours=point.hours,
        accepts=[Stream(s) for s in point.accepts],
        links=route_links(point.name, point.lat, point.lon),
    )


async def nearby(
    session: AsyncSession,
    *,
    lat: float,
    lon: float,
    stream: Stream | None = None,
    kinds: Sequence[str] | None = None,
    radius_m: float = DEFAULT_RADIUS_M,
    limit: int = DEFAULT_LIMIT,
) -> list[Place]:
    """Places within ``radius_m`` that take ``stream`` (any when None), nearest first.

    ``kinds`` narrows to those kinds of place; with a stream, only the kinds that accept it
    (``data/kinds.json``) are searched, and only points whose own list includes it.
    """
    _check_query(lat, lon, radius_m, limit)
    known = catalog().kinds
    if kinds is not None:
        unknown = sorted(set(kinds) - set(known))
        if unknown:
            raise InvalidSearch(f"unknown kind {unknown}; known kinds: {sorted(known)}")
    # Repeated kinds (``?kind=a&kind=a``) would search, and list, the same places twice.
    search_kinds: list[str] | None = list(dict.fromkeys(kinds)) if kinds is not None else None
    mask: int | None = None
    if stream is not None:
        for_stream = catalog().kinds_for(stream)
        search_kinds = [k for k in for_stream if search_kinds is None or k in search_kinds]
        mask = stream_bit(stream)
    return await _search(
        session, lat=lat, lon=lon, kinds=search_kinds, mask=mask, radius_m=radius_m, limit=limit
    )


async def _search(
    session: AsyncSession,
    *,
    lat: float,
    lon: float,
    kinds: Sequence[str] | None,
    mask: int | None,
    radius_m: float,
    limit: int,
) -> list[Place]:
    hits = await repository.nearest(
        session, lat=lat, lon=lon, kinds=kinds, mask=mask, radius_m=radius_m, limit=limit
    )
    return [to_place(h.point, h.distance_m) for h in hits]


@dataclass(frozen=True, slots=True)
class PointDetail:
    """One place with everything its sources say (the map screen's detail sheet)."""

    place: Place
    source: str
    merged_sources: list[str]
    extra: dict[str, Any]


async def get(
    session: AsyncSession, point_id: str, *, lat: float | None = None, lon: float | None = None
) -> PointDetail:
    """The place ``point_id``; its distance is from (lat, lon) when given, else 0."""
    point = await repository.get(session, point_id)
    if point is None:
        raise PointNotFound(f"no collection point with id {point_id!r}")
    distance = 0.0
    if lat is not None and lon is not None:
        distance = haversine_m(lat, lon, point.lat, point.lon)
    return PointDetail(
        place=to_place(point, distance),
        source=point.source,
        merged_sources=list(point.merged_sources),
        extra=dict(point.extra),
    )


@dataclass(frozen=True, slots=True)
class Suggestion:
    places: list[Place]
    note: str | None
    fallback: bool


async def suggest(
    session: AsyncSession,
    *,
    lat: float,
    lon: float,
    stream: Stream,
    locale: Locale,
    radius_m: float = DEFAULT_RADIUS_M,
    limit: int = DEFAULT_LIMIT,
) -> Suggestion:
    """Places for a scanned item; when none is near, the nearest recycling centre and a note.

    A position outside Korea is not an error here (a traveller may scan abroad): it gets the
    household-collection note and no places.
    """
    notes = catalog()
    if not in_korea(lat, lon):
        return Suggestion(places=[], note=notes.note("household_only", locale), fallback=True)
    if not notes.kinds_for(stream):
        return Suggestion(places=[], note=notes.note("household_only", locale), fallback=True)
    places = await nearby(session, lat=lat, lon=lon, stream=stream, radius_m=radius_m, limit=limit)
    if places:
        return Suggestion(places=places, note=None, fallback=False)
    # The fallback may be farther than the user asked to look: one distant centre, clearly
    # labelled by the note, is more useful than an empty list.
    centre = await _search(
        session,
        lat=lat,
        lon=lon,
        kinds=[FALLBACK_KIND],
        mask=None,
        radius_m=FALLBACK_RADIUS_M,
        limit=1,
    )
    return Suggestion(places=centre, note=notes.note("nothing_near", locale), fallback=True)


# --------------------------------------------------------------------------- import


def record_row(record: PointRecord) -> dict[str, Any]:
    """The database row of a normalised record, with the digest that makes imports idempotent."""
    row: dict[str, Any] = {
        "id": record.id,
        "kind": record.kind,
        "name": record.name,
        "address": record.address,
        "lat": record.lat,
        "lon": record.lon,
        "hours": record.hours,
        "accepts": [s.value for s in record.accepts],
        "accepts_mask": accepts_mask(record.accepts),
        "source": record.source,
        "source_id": record.source_id,
        "extra": record.extra,
        "merged_sources": sorted(record.merged_sources),
    }
    canonical = json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    row["digest"] = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return row


@dataclass(slots=True)
class ImportResult:
    stats: repository.UpsertStats
    by_kind: dict[str, int] = field(default_factory=dict)


async def import_records(
    session: AsyncSession,
    records: Sequence[PointRecord],
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Bring ``collection_points`` in line with ``records`` (upsert by id, prune per source)."""
    sources = sorted({r.source for r in records})
    stats = await repository.upsert(
        session, (record_row(r) for r in records), prune_sources=sources, progress=progress
    )
    return ImportResult(stats=stats, by_kind=await repository.count_by_kind(session))


__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_RADIUS_M",
    "MAX_LIMIT",
    "MAX_RADIUS_M",
    "ImportResult",
    "PointDetail",
    "Suggestion",
    "get",
    "import_records",
    "nearby",
    "record_row",
    "suggest",
]
