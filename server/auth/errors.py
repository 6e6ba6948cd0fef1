"""Errors of the sign-in flows, on top of the domain's base errors.

Messages are shown to clients and written to logs, so none of them ever carries a token, a
code, a verifier or a client secret.
"""

from __future__ import annotations

from protocol.messages import ErrorCode
from server.errors import AuthError, WasteCoachError


class UnknownProvider(WasteCoachError):
    """The provider is not one we know, or it has no client id on this server."""

    code = ErrorCode.NOT_FOUND
    status = 404


class ProviderRefused(AuthError):
    """The provider (or its token) said no: bad code, revoked token, wrong audience..."""


class ProviderUnavailable(WasteCoachError):
    """The provider timed out or answered something that is not its documented protocol."""

    code = ErrorCode.PROVIDER_UNAVAILABLE
    status = 502
    retryable = True
