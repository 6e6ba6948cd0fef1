"""Errors of the locations domain. Services raise these; ``server.app`` maps them to HTTP."""

from __future__ import annotations

from protocol.messages import ErrorCode
from server.errors import WasteCoachError


class LocationsError(WasteCoachError):
    """Base of every locations error."""


class PointNotFound(LocationsError):
    code = ErrorCode.NOT_FOUND
    status = 404


class InvalidSearch(LocationsError):
    """The search cannot be answered as asked (outside Korea, unknown kind, bad bounds)."""

    code = ErrorCode.INVALID_MESSAGE
    status = 422
