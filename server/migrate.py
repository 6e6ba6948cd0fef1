"""Apply the Alembic migrations programmatically (``wastecoach migrate``, embedded start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")

#: Objects that exist only on PostgreSQL (the PostGIS geography column and its indexes) and are
#: managed by the migrations themselves, not by the models.
_MIGRATION_ONLY = {"geog", "ix_collection_points_geog", "ix_collection_points_kind_geog"}
#: Tables an extension creates (PostGIS's spatial_ref_sys), not ours to manage.
_EXTENSION_TABLES = {"spatial_ref_sys"}


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic filter: what autogenerate and model comparison look at."""
    if type_ == "table" and name in _EXTENSION_TABLES:
        return False
    return name not in _MIGRATION_ONLY


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Blocking: run from a thread or before the event loop starts."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
