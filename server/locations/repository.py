"""Every query on ``collection_points``: the nearest search on both back ends and the import upsert.

Nothing here commits; the caller's :meth:`server.db.Database.session` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Float,
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
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnClause, ColumnElement

from server.locations.geo import bounding_box, haversine_m
from server.locations.models import CollectionPoint

#: Radii tried in turn on SQLite before the requested one. Most searches fill their limit
#: within the first step, so only a small box is read; a step is only trusted when it found
#: ``limit`` points inside its own circle, so the answer is the same as one big search.
_SQLITE_STEPS_M = (750.0, 2_500.0, 7_500.0)
_BATCH = 1_000


@dataclass(frozen=True, slots=True)
class Hit:
    point: CollectionPoint
    distance_m: float


def _filters(kinds: Sequence[str] | None, mask: int | None) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if kinds is not None:
        clauses.append(CollectionPoint.kind.in_(kinds))
    if mask is not None:
        clauses.append(CollectionPoint.accepts_mask.op("&")(mask) != 0)
    return clauses


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
    if session.get_bind().dialect.name == "postgresql":
        return await _nearest_postgis(
            session, lat=lat, lon=lon, kinds=kinds, mask=mask, radius_m=radius_m, limit=limit
        )
    return await _nearest_bbox(
        session, lat=lat, lon=lon, kinds=kinds, mask=mask, radius_m=radius_m, limit=limit
    )


async def _nearest_postgis(
    session: AsyncSession,
    *,
    lat: float,
    lon: float,
    kinds: Sequence[str] | None,
    mask: int | None,
    radius_m: float,
    limit: int,
) -> list[Hit]:
    geog: ColumnClause[Any] = literal_column("collection_points.geog")
    origin = func.geography(
        func.ST_SetSRID(
            func.ST_MakePoint(bindparam("o_lon", lon, Float), bindparam("o_lat", lat, Float)),
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
    for kind in kinds if kinds is not None else [None]:
        part = select(*CollectionPoint.__table__.c, distance)
        if kind is not None:
            part = part.where(CollectionPoint.kind == kind)
        if mask is not None:
            part = part.where(CollectionPoint.accepts_mask.op("&")(mask) != 0)
        parts.append(part.order_by(geog.op("<->")(origin)).limit(limit))
    near = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("near")
    point = aliased(CollectionPoint, near)
    query = (
        select(point, near.c.distance_m)
        .where(near.c.distance_m <= radius_m)
        .order_by(near.c.distance_m, near.c.id)
        .limit(limit)
    )
    rows = (await session.execute(query)).all()
    return [Hit(point=row[0], distance_m=float(row[1])) for row in rows]


async def _nearest_bbox(
    session: AsyncSession,
    *,
    lat: float,
    lon: float,
    kinds: Sequence[str] | None,
    mask: int | None,
    radius_m: float,
    limit: int,
) -> list[Hit]:
    steps = [r for r in _SQLITE_STEPS_M if r < radius_m] + [radius_m]
    hits: list[Hit] = []
    for step in steps:
        min_lat, max_lat, min_lon, max_lon = bounding_box(lat, lon, step)
        query = select(CollectionPoint).where(
            CollectionPoint.lat.between(min_lat, max_lat),
            CollectionPoint.lon.between(min_lon, max_lon),
            *_filters(kinds, mask),
        )
        hits = []
        for point in (await session.scalars(query)).all():
            d = haversine_m(lat, lon, point.lat, point.lon)
            if d <= step:
                hits.append(Hit(point=point, distance_m=d))
        if len(hits) >= limit:
            break
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
