"""The domain's base error and the one table from error to HTTP status and WebSocket code.

Services raise these; endpoints and the WebSocket adapter translate them. Nothing below the
endpoints raises HTTPException.
"""

from __future__ import annotations

import math

from protocol.messages import ErrorCode


class WasteCoachError(Exception):
    code: ErrorCode = ErrorCode.INTERNAL
    status: int = 500
    retryable: bool = False
    #: Seconds after which a retry can succeed; REST sends it as ``Retry-After``.
    retry_after_s: int | None = None

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class AuthError(WasteCoachError):
    code = ErrorCode.AUTH_INVALID
    status = 401


class TokenExpired(AuthError):
    code = ErrorCode.AUTH_EXPIRED


class Forbidden(WasteCoachError):
    """Raise sites name the specific code (``upload_forbidden``...); this is only the default."""

    code = ErrorCode.FORBIDDEN
    status = 403


class NotFound(WasteCoachError):
    """Raise sites name the specific code (``upload_not_found``...); this is only the default."""

    code = ErrorCode.NOT_FOUND
    status = 404


class InvalidInput(WasteCoachError):
    code = ErrorCode.INVALID_MESSAGE
    status = 422


class QuotaExceeded(WasteCoachError):
    """A per-user quota is spent (``upload_quota_exceeded``...). ``retry_after_s``: when there
    will be room again; REST answers it as ``Retry-After``."""

    code = ErrorCode.RATE_LIMITED
    status = 429
    retryable = True

    def __init__(
        self, message: str, *, code: ErrorCode | None = None, retry_after_s: float
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = max(1, math.ceil(retry_after_s))


class ImageInvalid(WasteCoachError):
    code = ErrorCode.IMAGE_INVALID
    status = 422


class RateLimited(WasteCoachError):
    """A budget is spent (a user's scans or questions, an address's guest accounts)."""

    code = ErrorCode.RATE_LIMITED
    status = 429
    retryable = True

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)


class StageFailed(WasteCoachError):
    code = ErrorCode.STAGE_FAILED
    status = 502
    retryable = True
