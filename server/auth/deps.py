"""FastAPI dependencies: the authenticated user of a REST request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server.auth.tokens import Claims
from server.errors import AuthError

_bearer = HTTPBearer(auto_error=False)


async def current_claims(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Claims:
    if credentials is None:
        raise AuthError("send 'Authorization: Bearer <access token>'")
    claims: Claims = request.app.state.services.tokens.verify_access(credentials.credentials)
    return claims


CurrentUser = Annotated[Claims, Depends(current_claims)]
