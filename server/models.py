"""Imports every domain's models so that Base.metadata (and Alembic) sees all tables."""

from server.auth.models import Identity, OAuthState, RefreshToken
from server.coach.models import ChatMessage
from server.locations.models import CollectionPoint
from server.scans.models import Scan
from server.uploads.models import Upload
from server.users.models import User

__all__ = [
    "ChatMessage",
    "CollectionPoint",
    "Identity",
    "OAuthState",
    "RefreshToken",
    "Scan",
    "Upload",
    "User",
]
