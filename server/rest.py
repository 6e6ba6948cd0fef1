"""What every REST route may answer besides its success: the one error shape of the API
(``server.app`` writes it for every error), declared in the OpenAPI schema so that clients and
the schema-driven tests know each status a route can return."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str
    #: Present (true) when the same request may succeed later.
    retryable: bool | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


_WHY = {
    400: "The body is not JSON, or the request is malformed.",
    401: "No access token, or one that is refused (expired, revoked, of a deleted account).",
    403: "Not allowed (an invalid or used upload URL, a disabled feature).",
    404: "No such resource (or not yours).",
    422: "A parameter or body field is invalid.",
    429: "A budget or quota is spent; see Retry-After.",
    503: "A service the request needs is briefly away; see Retry-After.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a router or route: each status with the error shape."""
    return {status: {"model": ErrorResponse, "description": _WHY[status]} for status in statuses}
