"""Table of collection points: bins, recycling centres, reward sites and zero-waste shops.

One normalised schema for every source (see :mod:`server.locations.normalize`). The same
model runs on both back ends; only the spatial index differs:

* PostgreSQL: a stored generated ``geog geography(Point, 4326)`` column derived from
  ``lat``/``lon``, with GiST indexes on ``(geog)`` and ``(kind, geog)``, so PostGIS answers
  nearest-first queries from an index and nothing in Python has to keep the column in sync.
* SQLite: the composite ``(kind, lat, lon)`` B-tree index serves a bounding-box prefilter;
  exact great-circle distances are computed on the few rows inside the box.

``geog`` is deliberately not mapped on the model: nothing reads it but the PostgreSQL query,
and mapping it would need a geometry type library for one column.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import DDL, JSON, Float, Index, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base

#: Statements that add the PostGIS column and its index to an existing table. The migration
#: runs the same statements; ``create_all`` (embedded start-up, tests) runs them through the
#: ``after_create`` hook below.
POSTGIS_DDL: tuple[str, ...] = (
    "CREATE EXTENSION IF NOT EXISTS postgis",
    # btree_gist (PostgreSQL contrib) lets ``kind`` sit in the same GiST index as ``geog``.
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    "ALTER TABLE collection_points ADD COLUMN IF NOT EXISTS geog geography(Point, 4326) "
    "GENERATED ALWAYS AS (geography(ST_SetSRID(ST_MakePoint(lon, lat), 4326))) STORED",
    # Nearest-first search over every kind.
    "CREATE INDEX IF NOT EXISTS ix_collection_points_geog ON collection_points USING gist (geog)",
    # Nearest-first search within one kind: an ordered index scan that stops after ``limit``
    # rows instead of sorting every bin of a dense city inside the radius.
    "CREATE INDEX IF NOT EXISTS ix_collection_points_kind_geog "
    "ON collection_points USING gist (kind, geog)",
)


class CollectionPoint(Base):
    __tablename__ = "collection_points"

    #: ``<source>:<source id>``; stable across imports, so the app can link to a place.
    id: Mapped[str] = mapped_column(String(96), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(300))
    address: Mapped[str | None] = mapped_column(Text, default=None)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    #: Opening hours as the source states them (Korean), or null when unknown.
    hours: Mapped[str | None] = mapped_column(Text, default=None)
    #: Stream values this point takes.
    accepts: Mapped[list[str]] = mapped_column(JSON)
    #: The same as a bit set (``server.locations.streams.STREAM_BITS``), filterable in SQL.
    accepts_mask: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(64))
    extra: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Ids of the duplicate records (other files, repeated rows) merged into this one.
    merged_sources: Mapped[list[str]] = mapped_column(JSON)
    #: Hash of every imported field; an import rewrites a row only when it changed.
    digest: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        # SQLite's search reads only this index: kind and the box, then the stream bits.
        Index("ix_collection_points_kind_lat_lon", "kind", "lat", "lon", "accepts_mask"),
    )


for _statement in POSTGIS_DDL:
    event.listen(
        CollectionPoint.__table__,
        "after_create",
        # SQLAlchemy leaves DDL.__init__ unannotated.
        DDL(_statement).execute_if(dialect="postgresql"),  # type: ignore[no-untyped-call]
    )
