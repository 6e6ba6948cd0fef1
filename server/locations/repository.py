"""Every query on ``collection_points``: the nearest search on both back ends and the import upsert.

Nothing here commits; the caller's :meth:`server.db.Database.session` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import (
    Float,
    Integer,
    Select,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnClause

from server.locations.geo import bounding_box, haversine_m
from server.locations.models import CollectionPoint

#: Radii tried in turn on SQLite before the requested one. Most searches fill their limit
#: within the first step, so only a small box is read; a step is only trusted when it found
#: ``limit`` points inside its own circle, so the answer is the same as one big search.
_SQLITE_STEPS_M = (750.0, 2_500.0, 7_500.0)
_BATCH = 1_000


class PointFields(Protocol):
    """What a search hit carries: the columns a :class:`protocol.messages.Place` needs."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str | None: ...
    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...
    @property
    def hours(self) -> str | None: ...
    @property
    def accepts(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Hit:
    point: PointFields
    distance_m: float


_table = CollectionPoint.__table__
#: Columns a hit reads; the JSON blobs a search does not show (extra, merged_sources) stay put.
_HIT_COLUMNS = tuple(
    _table.c[name] for name in ("id", "kind", "name", "address", "lat", "lon", "hours", "accepts")
)


async def nearest(
    session: AsyncSession,
    *,
    lat: float,
    lon: float,
    kinds: Sequence[str] | None,
    mask: int | None,
    radius_m: float,
    limit: int,
) -> list[Hit]:
    """Points within ``radius_m`` of (lat, lon), nearest first by great-circle distance.

    ``kinds`` (None: any) and ``mask`` (None: any; else at least one of these stream bits)
    narrow the search.
    """
    if kinds is not None and not kinds:
        return []
    key = tuple(kinds) if kinds is not None else None
    if session.get_bind().dialect.name == "postgresql":
        return await _nearest_postgis(
            session, lat=lat, lon=lon, kinds=key, mask=mask, radius_m=radius_m, limit=limit
        )
    return await _nearest_bbox(
        session, lat=lat, lon=lon, kinds=key, mask=mask, radius_m=radius_m, limit=limit
    )


@lru_cache(maxsize=64)
def _postgis_statement(kinds: tuple[str, ...] | None, masked: bool) -> Select[Any]:
    """The search for one combination of kinds; values arrive as bind parameters.

    Built once per combination: composing the union costs more Python time than PostGIS
    needs to answer it.
    """
    geog: ColumnClause[Any] = literal_column("collection_points.geog")
    origin = func.geography(
        func.ST_SetSRID(
            func.ST_MakePoint(bindparam("o_lon", type_=Float), bindparam("o_lat", type_=Float)),
            4326,
        )
    )
    # ``<->`` on geography is the spherical distance, the same figure ST_Distance(.., false)
    # reports, and a GiST index can return rows in that order. Each kind gets its own ordered
    # scan of the (kind, geog) index that stops after ``limit`` matching rows: a GiST scan
    # cannot order over ``kind IN (...)``, and a radius condition in the same query makes the
    # planner sort every point inside the circle instead (thousands of clothing bins in Seoul).
    # The radius is applied to the few rows that come back.
    distance = func.ST_Distance(geog, origin, False).label("distance_m")
    parts = []
    for kind in kinds if kinds is not None else (None,):
        part = select(*_HIT_COLUMNS, distance)
        if kind is not None:
            part = part.where(_table.c.kind == kind)
        if masked:
            part = part.where(_table.c.accepts_mask.op("&")(bindparam("mask", type_=Integer)) != 0)
        parts.append(part.order_by(geog.op("<->")(origin)).limit(bindparam("lim", type_=Integer)))
    near = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("near")
    return (
        select(near)
        .where(near.c.distance_m <= bindparam("radius", type_=Float))
        .order_by(near.c.distance_m, near.c.id)
        .limit(bindparam("lim", type_=Integer))
    )


async def _nearest_postgis(
    session: AsyncSession,
    *,
    lat: float,
    lon: float,
    kinds: tuple[str, ...] | None,
    mask: int | None,
    radius_m: float,
    limit: int,
) -> list[Hit]:
    params: dict[str, Any] = {"o_lat": lat, "o_lon": lon, "radius": radius_m, "lim": limit}
    if mask is not None:
        params["mask"] = mask
    rows = (await session.execute(_postgis_statement(kinds, mask is not None), params)).all()
    return [Hit(point=row, distance_m=float(row.distance_m)) for row in rows]


@lru_cache(maxsize=64)
def _bbox_statements(
    kinds: tuple[str, ...] | None, masked: bool
) -> tuple[Select[Any], Select[Any]]:
    """(candidates in a box, hits by rowid) for one combination of kinds.

    The first reads only the ``(kind, lat, lon, accepts_mask)`` index (it holds the rowid),
    never the table; the second fetches the few winners.
    """
    rowid: ColumnClause[Any] = literal_column("collection_points.rowid")
    candidates = select(rowid.label("rid"), _table.c.lat, _table.c.lon).where(
        _table.c.lat.between(bindparam("min_lat"), bindparam("max_lat")),
        _table.c.lon.between(bindparam("min_lon"), bindparam("max_lon")),
    )
    if kinds is not None:
        candidates = candidates.where(_table.c.kind.in_(kinds))
    if masked:
        candidates = candidates.where(
            _table.c.accepts_mask.op("&")(bindparam("mask", type_=Integer)) != 0
        )
    winners = select(rowid.label("rid"), *_HIT_COLUMNS).where(
        rowid.in_(bindparam("rids", expanding=True))
    )
    return candidates, winners


async def _nearest_bbox(
    session: AsyncSession,
    *,
    lat: float,
    lon: float,
    kinds: tuple[str, ...] | None,
    mask: int | None,
    radius_m: float,
    limit: int,
) -> list[Hit]:
    candidates, winners = _bbox_statements(kinds, mask is not None)
    steps = [r for r in _SQLITE_STEPS_M if r < radius_m] + [radius_m]
    found: list[tuple[float, int]] = []
    for step in steps:
        min_lat, max_lat, min_lon, max_lon = bounding_box(lat, lon, step)
        params: dict[str, Any] = {
            "min_lat": min_lat,
            "max_lat": max_lat,
            "min_lon": min_lon,
            "max_lon": max_lon,
        }
        if mask is not None:
            params["mask"] = mask
        found = []
        for rid, p_lat, p_lon in (await session.execute(candidates, params)).all():
            d = haversine_m(lat, lon, p_lat, p_lon)
            if d <= step:
                found.append((d, rid))
        if len(found) >= limit:
            break
    if not found:
        return []
    found.sort()
    distances = {rid: d for d, rid in found}
    # Ties at the cut are settled by id below, so fetch every point as far as the last one.
    cutoff = found[min(limit, len(found)) - 1][0]
    keep = [rid for d, rid in found if d <= cutoff]
    rows = (await session.execute(winners, {"rids": keep})).all()
    hits = [Hit(point=row, distance_m=distances[row.rid]) for row in rows]
    hits.sort(key=lambda h: (h.distance_m, h.point.id))
    return hits[:limit]


async def get(session: AsyncSession, point_id: str) -> CollectionPoint | None:
    return await session.get(CollectionPoint, point_id)


async def count_by_kind(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(CollectionPoint.kind, func.count()).group_by(CollectionPoint.kind)
    )
    return {kind: int(n) for kind, n in rows.all()}


# --------------------------------------------------------------------------- import


@dataclass(slots=True)
class UpsertStats:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0


async def upsert(
    session: AsyncSession,
    rows: Iterable[dict[str, Any]],
    *,
    prune_sources: Iterable[str] = (),
    progress: Callable[[int], None] | None = None,
) -> UpsertStats:
    """Insert new rows, rewrite rows whose ``digest`` changed, leave the rest alone.

    Rows of ``prune_sources`` that the import no longer contains are deleted: the import is a
    full picture of those sources, and a bin that was taken away should stop being suggested.
    """
    existing = dict(
        (await session.execute(select(CollectionPoint.id, CollectionPoint.digest))).all()
    )
    stats = UpsertStats()
    to_insert: list[dict[str, Any]] = []
    to_update: list[dict[str, Any]] = []
    seen: set[str] = set()

    async def flush() -> None:
        if to_insert:
            await session.execute(insert(CollectionPoint), to_insert)
        if to_update:
            await session.execute(update(CollectionPoint), to_update)
        if progress is not None:
            progress(len(to_insert) + len(to_update))
        to_insert.clear()
        to_update.clear()

    for row in rows:
        seen.add(row["id"])
        current = existing.get(row["id"])
        if current is None:
            to_insert.append(row)
            stats.inserted += 1
        elif current != row["digest"]:
            to_update.append(row)
            stats.updated += 1
        else:
            stats.unchanged += 1
            if progress is not None:
                progress(1)
        if len(to_insert) + len(to_update) >= _BATCH:
            await flush()
    await flush()

    sources = list(prune_sources)
    if sources:
        stale_query = select(CollectionPoint.id).where(CollectionPoint.source.in_(sources))
        stale = [pid for pid in (await session.scalars(stale_query)).all() if pid not in seen]
        for start in range(0, len(stale), _BATCH):
            chunk = stale[start : start + _BATCH]
            await session.execute(delete(CollectionPoint).where(CollectionPoint.id.in_(chunk)))
        stats.removed = len(stale)
    if stats.inserted or stats.updated or stats.removed:
        # Fresh statistics keep the planner on the spatial indexes right after a bulk load.
        await session.execute(text("ANALYZE collection_points"))
    return stats


__all__ = ["Hit", "UpsertStats", "count_by_kind", "get", "nearest", "upsert"]
