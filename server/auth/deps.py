"""FastAPI dependencies: the authenticated user of a REST request, and sign-in state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server.auth.revocation import ensure_account_exists
from server.auth.service import Accounts
from server.auth.tokens import Claims
from server.errors import AuthError

_bearer = HTTPBearer(auto_error=False)


async def current_claims(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Claims:
    if credentials is None:
        raise AuthError("send 'Authorization: Bearer <access token>'")
    container = request.app.state.container
    claims: Claims = container.tokens.verify_access(credentials.credentials)
    await ensure_account_exists(container.db, claims)
    return claims


CurrentUser = Annotated[Claims, Depends(current_claims)]


def accounts(request: Request) -> Accounts:
    """The process's sign-in state, made on first use (the app may also set it at start-up)."""
    state = request.app.state
    existing = getattr(state, "accounts", None)
    if isinstance(existing, Accounts):
        return existing
    made = Accounts.from_settings(state.container.settings)
    state.accounts = made
    return made


AccountsDep = Annotated[Accounts, Depends(accounts)]
