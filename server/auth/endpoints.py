"""Authentication endpoints: guest tokens, OAuth sign-in (browser and native), refresh, logout.

Browser sign-in: ``GET /{provider}/authorize`` redirects to the provider (or, with
``?redirect=false``, returns the URL as JSON for a single-page app to navigate to); the
provider sends the browser back to the registered redirect URI with ``code`` and ``state``,
and that page (or the browser itself) calls ``GET /{provider}/callback`` with them to get our
tokens. Native apps sign in with the provider's SDK and post its token to
``POST /{provider}/token``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from protocol.messages import ErrorCode
from server.auth import service
from server.auth.deps import AccountsDep
from server.deps import ClientHostDep, ContainerDep
from server.errors import Forbidden
from server.rest import error_responses

router = APIRouter(
    prefix="/api/v1/auth",
    tags=["auth"],
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user_id: str


class SessionTokens(TokenResponse):
    refresh_token: str = Field(
        description="Opaque; exchange it at /auth/refresh. Each use returns a new one and "
        "retires this one: using a retired one signs out every session of this sign-in."
    )
    refresh_expires_in: int


class AuthorizeResponse(BaseModel):
    url: str
    state: str


class ProviderToken(BaseModel):
    """What the provider's native SDK handed the app."""

    id_token: str | None = Field(default=None, description="Google: the ID token.")
    access_token: str | None = Field(default=None, description="Kakao, Naver: the access token.")


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


def _tokens(pair: service.TokenPair) -> SessionTokens:
    return SessionTokens(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        user_id=pair.user_id,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
    )


@router.post(
    "/guest",
    response_model=TokenResponse,
    status_code=201,
    responses={429: {"description": "Too many guest accounts from this address; see Retry-After."}},
)
async def guest_token(container: ContainerDep, client_host: ClientHostDep) -> TokenResponse:
    if not container.settings.guest_enabled:
        raise Forbidden("guest login is disabled on this server", code=ErrorCode.FORBIDDEN)
    guest = await service.create_guest(
        container.db, container.tokens, container.limiter, client_host
    )
    return TokenResponse(
        access_token=guest.access_token, expires_in=guest.expires_in, user_id=guest.user_id
    )


@router.get(
    "/{provider}/authorize",
    response_model=AuthorizeResponse,
    responses={302: {"description": "Redirect to the provider's sign-in page."}},
)
async def authorize(
    provider: str,
    container: ContainerDep,
    accounts: AccountsDep,
    redirect: Annotated[bool, Query()] = True,
) -> Response | AuthorizeResponse:
    url, state = await service.start_sign_in(container.db, accounts, provider)
    if redirect:
        return RedirectResponse(url, status_code=302)
    return AuthorizeResponse(url=url, state=state)


@router.get("/{provider}/callback", response_model=SessionTokens)
async def callback(
    provider: str,
    container: ContainerDep,
    accounts: AccountsDep,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> SessionTokens:
    pair = await service.finish_sign_in(
        container.db, container.tokens, accounts, provider, code=code, state=state, error=error
    )
    return _tokens(pair)


@router.post("/{provider}/token", response_model=SessionTokens)
async def provider_token(
    provider: str, body: ProviderToken, container: ContainerDep, accounts: AccountsDep
) -> SessionTokens:
    pair = await service.exchange_provider_token(
        container.db,
        container.tokens,
        accounts,
        provider,
        id_token=body.id_token,
        access_token=body.access_token,
    )
    return _tokens(pair)


@router.post("/refresh", response_model=SessionTokens)
async def refresh(
    body: RefreshRequest, container: ContainerDep, accounts: AccountsDep
) -> SessionTokens:
    pair = await service.refresh_tokens(
        container.db, container.tokens, accounts, body.refresh_token
    )
    return _tokens(pair)


@router.post("/logout", status_code=204)
async def logout(body: RefreshRequest, container: ContainerDep) -> Response:
    await service.sign_out(container.db, body.refresh_token)
    return Response(status_code=204)
