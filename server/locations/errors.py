"""Errors of the locations domain. Services raise these; the HTTP layer maps them to statuses."""

from __future__ import annotations


class LocationsError(Exception):
    """Base of every locations error; ``status_code`` is its HTTP status."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PointNotFound(LocationsError):
    status_code = 404


class InvalidSearch(LocationsError):
    """The search cannot be answered as asked (outside Korea, unknown kind, bad bounds)."""

    status_code = 422
