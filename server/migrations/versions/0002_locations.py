"""Collection points (bins, recycling centres, reward sites, zero-waste shops).

Revision ID: 0002_locations
Revises: 0001_initial

On PostgreSQL this enables PostGIS and btree_gist and adds a generated ``geography`` column
with GiST indexes on ``(geog)`` and ``(kind, geog)``;
SQLite gets the composite ``(kind, lat, lon)`` index only (see server/locations/models.py).
The DDL is written out here rather than imported so that this revision stays what it was when
later revisions change the model.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_locations"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collection_points",
        sa.Column("id", sa.String(96), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("hours", sa.Text(), nullable=True),
        sa.Column("accepts", sa.JSON(), nullable=False),
        sa.Column("accepts_mask", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("merged_sources", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_collection_points"),
        sa.UniqueConstraint("source", "source_id", name="uq_collection_points_source"),
    )
    op.create_index(
        "ix_collection_points_kind_lat_lon",
        "collection_points",
        ["kind", "lat", "lon", "accepts_mask"],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        # btree_gist (PostgreSQL contrib) lets ``kind`` share a GiST index with ``geog``.
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE collection_points ADD COLUMN geog geography(Point, 4326) "
            "GENERATED ALWAYS AS (geography(ST_SetSRID(ST_MakePoint(lon, lat), 4326))) STORED"
        )
        op.execute("CREATE INDEX ix_collection_points_geog ON collection_points USING gist (geog)")
        op.execute(
            "CREATE INDEX ix_collection_points_kind_geog "
            "ON collection_points USING gist (kind, geog)"
        )


def downgrade() -> None:
    # The PostGIS column and index go with the table; the extension stays, other data may
    # use it.
    op.drop_table("collection_points")
