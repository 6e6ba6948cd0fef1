"""The authorization-code flow with PKCE (S256), on Authlib's async OAuth 2.0 client.

``begin`` makes a fresh ``state``, PKCE ``code_verifier`` and OpenID ``nonce``, stores them
(state only as a hash) in ``oauth_states`` and returns the provider's authorization URL.
``consume_state`` deletes the row and returns it: only the first request carrying a given
state gets it back, on whichever server process it lands. ``exchange_code`` trades the code
for the provider's tokens, sending the verifier so a stolen code is useless on its own.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.config import OAuthProviderSettings
from server.auth.errors import ProviderRefused, ProviderUnavailable
from server.auth.models import OAuthState
from server.errors import AuthError
from server.users.models import utcnow

log = logging.getLogger(__name__)

# Authlib's async client is built on httpx2 when that is installed and on httpx otherwise; its
# transport errors come from whichever it uses.
try:
    import httpx2 as _http
except ImportError:  # pragma: no cover - depends on what Authlib was installed with
    import httpx as _http  # type: ignore[no-redef]


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _client(config: OAuthProviderSettings) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=config.client_id,
        client_secret=config.client_secret.get_secret_value() or None,
        scope=" ".join(config.scopes) or None,
        redirect_uri=config.redirect_uri or None,
        code_challenge_method="S256",
        # Kakao and Naver document only secrets in the form body; Google accepts it too.
        token_endpoint_auth_method="client_secret_post",
        timeout=config.timeout_s,
    )


async def begin(
    session: AsyncSession, provider: str, config: OAuthProviderSettings, *, ttl_s: int
) -> tuple[str, str]:
    """Record a new sign-in attempt; return (authorization URL, state)."""
    state = secrets.token_urlsafe(32)
    # RFC 7636: 43 to 128 characters from the unreserved set.
    verifier = generate_token(64)
    nonce = secrets.token_urlsafe(24)
    now = utcnow()
    session.add(
        OAuthState(
            state_hash=_hash(state),
            provider=provider,
            code_verifier=verifier,
            nonce=nonce,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
    )
    # Expired attempts are swept here rather than by a job: starts are rare and the index on
    # expires_at keeps this cheap.
    await session.execute(delete(OAuthState).where(OAuthState.expires_at < now))
    extra: dict[str, str] = {"nonce": nonce} if "openid" in config.scopes else {}
    async with _client(config) as client:
        url, _ = client.create_authorization_url(
            config.authorize_url, state=state, code_verifier=verifier, **extra
        )
    return str(url), state


async def consume_state(session: AsyncSession, provider: str, state: str) -> OAuthState:
    """The pending sign-in for ``state``, removed so that it can never be used again."""
    state_hash = _hash(state)
    row = await session.scalar(select(OAuthState).where(OAuthState.state_hash == state_hash))
    if row is None:
        raise AuthError("unknown or already used sign-in state; start the sign-in again")
    result = await session.execute(delete(OAuthState).where(OAuthState.state_hash == state_hash))
    # Two callbacks racing with one state both read the row; only one deletes it.
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise AuthError("unknown or already used sign-in state; start the sign-in again")
    if row.provider != provider:
        raise AuthError("the sign-in state belongs to another provider")
    expires_at = row.expires_at
    if expires_at.tzinfo is None:  # SQLite hands back naive datetimes
        expires_at = expires_at.replace(tzinfo=utcnow().tzinfo)
    if expires_at < utcnow():
        raise AuthError("the sign-in took too long; start it again")
    return row


async def exchange_code(
    provider: str, config: OAuthProviderSettings, *, code: str, verifier: str, state: str
) -> dict[str, Any]:
    """The provider's token response for an authorization code."""
    # Naver requires the state again on the token request; the others ignore it.
    body = urlencode({"state": state}) if provider == "naver" else ""
    try:
        async with _client(config) as client:
            token = await client.fetch_token(
                config.token_url, code=code, code_verifier=verifier, body=body
            )
    except OAuthError as exc:
        # ``error`` is the provider's short code (invalid_grant...), safe to log and show.
        log.info("%s refused the code exchange: %s", provider, exc.error)
        raise ProviderRefused(f"{provider} refused the sign-in ({exc.error})") from exc
    except _http.TimeoutException as exc:
        log.warning("%s token endpoint timed out", provider)
        raise ProviderUnavailable(f"{provider} did not answer in time") from exc
    except _http.HTTPError as exc:
        log.warning("%s token endpoint failed: %s", provider, type(exc).__name__)
        raise ProviderUnavailable(f"{provider} could not be reached") from exc
    except ValueError as exc:
        log.warning("%s token endpoint answered something that is not JSON", provider)
        raise ProviderUnavailable(f"{provider} answered with an error") from exc
    return dict(token)
