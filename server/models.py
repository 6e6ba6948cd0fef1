"""Imports every domain's models so that Base.metadata (and Alembic) sees all tables."""

from server.locations.models import CollectionPoint
from server.scans.models import Scan
from server.uploads.models import Upload
from server.users.models import User

__all__ = ["CollectionPoint", "Scan", "Upload", "User"]
