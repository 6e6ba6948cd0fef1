"""Signing in with Kakao, Naver and Google, refreshing, and signing out.

Each function here is what one endpoint calls. Database work is split around calls to the
provider so that no transaction stays open while we wait on the network, and so that a spent
``state`` or a revoked refresh family is committed even when the request is then refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from server.auth import oauth, refresh, repository
from server.auth.config import AccountsSettings, OAuthProviderSettings
from server.auth.errors import ProviderRefused, ProviderUnavailable, UnknownProvider
from server.auth.providers import (
    USERINFO_PROVIDERS,
    JwksCache,
    ProviderProfile,
    kakao_app_check,
    verify_google_id_token,
)
from server.auth.tokens import TokenService
from server.db import Database
from server.errors import AuthError, InvalidInput, RateLimited
from server.limits import RateLimiter, address_key
from server.users import repository as users

if TYPE_CHECKING:
    from server.settings import Settings

log = logging.getLogger(__name__)

PROVIDERS = ("kakao", "naver", "google")


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    user_id: str


@dataclass(frozen=True, slots=True)
class GuestToken:
    access_token: str
    expires_in: int
    user_id: str


@dataclass
class Accounts:
    """Process-wide state of sign-in: the settings and each provider's cached signing keys."""

    settings: AccountsSettings
    _jwks: dict[str, JwksCache] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Accounts:
        return cls(settings.accounts)

    def provider(self, name: str) -> OAuthProviderSettings:
        config = self.settings.providers.get(name)
        if name not in PROVIDERS or config is None or not config.enabled:
            raise UnknownProvider(f"sign-in with {name!r} is not available on this server")
        return config

    def jwks(self, name: str, config: OAuthProviderSettings) -> JwksCache:
        cache = self._jwks.get(name)
        if cache is None or cache.url != config.jwks_url:
            if not config.jwks_url:
                raise ProviderUnavailable(f"{name} has no key set configured")
            cache = JwksCache(
                config.jwks_url, max_age_s=self.settings.jwks_cache_s, timeout_s=config.timeout_s
            )
            self._jwks[name] = cache
        return cache


async def create_guest(
    db: Database, tokens: TokenService, limiter: RateLimiter, client_host: str | None
) -> GuestToken:
    """A new guest account and its access token, if the client's address has budget left.

    Every account gets its own scan and chat budget, so without this limit a client could
    escape those budgets by minting accounts. The hit is counted before the account exists:
    a refused request creates nothing.
    """
    budget = await limiter.hit(address_key(client_host), "guest")
    if not budget.allowed:
        log.info("guest creation refused for an address over its budget")
        raise RateLimited(
            f"too many new guest accounts from this address; try again in {budget.reset_s} s",
            retry_after_s=budget.reset_s,
        )
    async with db.session() as session:
        user = await users.create_guest(session)
        user_id = user.id
    return GuestToken(tokens.issue_access(user_id, guest=True), tokens.access_ttl_s, user_id)


async def start_sign_in(db: Database, accounts: Accounts, provider: str) -> tuple[str, str]:
    """(authorization URL, state) for a browser sign-in."""
    config = accounts.provider(provider)
    async with db.session() as session:
        return await oauth.begin(session, provider, config, ttl_s=accounts.settings.state_ttl_s)


async def finish_sign_in(
    db: Database, tokens: TokenService,
    accounts: Accounts,
    provider: str,
    *,
    code: str | None,
    state: str | None,
    error: str | None,
) -> TokenPair:
    """The callback: check the state, exchange the code with its verifier, sign the person in."""
    config = accounts.provider(provider)
    if not state:
        raise AuthError("the callback carries no state")
    # Spend the state first and commit that, whatever happens next: a state is good for one
    # callback, including one that reports an error.
    async with db.session() as session:
        pending = await oauth.consume_state(session, provider, state)
    if error:
        log.info("%s sign-in ended with error %r", provider, error[:64])
        raise ProviderRefused(f"{provider} did not sign the person in ({error[:64]})")
    if not code:
        raise AuthError("the callback carries no code")
    token = await oauth.exchange_code(
        provider, config, code=code, verifier=pending.code_verifier, state=state
    )
    try:
        profile = await _profile_from_token_response(
            accounts, provider, config, token, nonce=pending.nonce
        )
    except ProviderRefused as exc:
        log.info("%s sign-in refused after the code exchange: %s", provider, exc.message)
        raise
    return await _sign_in(db, tokens, accounts, profile)


async def exchange_provider_token(
    db: Database, tokens: TokenService,
    accounts: Accounts,
    provider: str,
    *,
    id_token: str | None,
    access_token: str | None,
) -> TokenPair:
    """Native apps: the provider's SDK signed the person in; verify its token and sign in."""
    config = accounts.provider(provider)
    try:
        if provider == "google":
            if not id_token:
                raise InvalidInput("google sign-in needs the ID token from the Google SDK")
            profile = await verify_google_id_token(
                config, accounts.jwks(provider, config), id_token, extra_audiences=True
            )
        else:
            if not access_token:
                raise InvalidInput(f"{provider} sign-in needs the access token from its SDK")
            if provider == "kakao":
                await kakao_app_check(config, access_token)
            profile = await USERINFO_PROVIDERS[provider](config, access_token)
    except ProviderRefused as exc:
        # The message names the check that failed, never the token.
        log.info("%s native sign-in refused: %s", provider, exc.message)
        raise
    return await _sign_in(db, tokens, accounts, profile)


async def _profile_from_token_response(
    accounts: Accounts,
    provider: str,
    config: OAuthProviderSettings,
    token: dict[str, Any],
    *,
    nonce: str,
) -> ProviderProfile:
    if provider == "google":
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise ProviderUnavailable("google's token response has no ID token")
        return await verify_google_id_token(
            config, accounts.jwks(provider, config), id_token, nonce=nonce
        )
    access_token = token.get("access_token")
    if not isinstance(access_token, str):
        raise ProviderUnavailable(f"{provider}'s token response has no access token")
    return await USERINFO_PROVIDERS[provider](config, access_token)


async def _sign_in(
    db: Database, tokens: TokenService, accounts: Accounts, profile: ProviderProfile
) -> TokenPair:
    async with db.session() as session:
        user = await repository.user_for_identity(
            session, profile.provider, profile.subject, profile.display_name
        )
        issued = await refresh.issue(
            session, user_id=user.id, ttl_s=accounts.settings.refresh_ttl_s
        )
    log.info("user %s signed in with %s", issued.user_id, profile.provider)
    return _pair(tokens, issued)


def _pair(tokens: TokenService, issued: refresh.IssuedRefresh) -> TokenPair:
    return TokenPair(
        access_token=tokens.issue_access(issued.user_id, guest=False),
        expires_in=tokens.access_ttl_s,
        refresh_token=issued.token,
        refresh_expires_in=issued.expires_in,
        user_id=issued.user_id,
    )


_REFUSALS = {
    refresh.Refusal.UNKNOWN: "the refresh token is not valid; sign in again",
    refresh.Refusal.EXPIRED: "the refresh token has expired; sign in again",
    refresh.Refusal.REVOKED: "the refresh token was revoked; sign in again",
    refresh.Refusal.REUSED: "the refresh token was already used; every session of this "
    "sign-in is now signed out; sign in again",
}


async def refresh_tokens(
    db: Database, tokens: TokenService, accounts: Accounts, token: str
) -> TokenPair:
    async with db.session() as session:
        outcome = await refresh.rotate(
            session,
            token,
            ttl_s=accounts.settings.refresh_ttl_s,
            grace_s=accounts.settings.refresh_grace_s,
        )
    # Outside the session: a reuse's family revocation is committed before we refuse.
    if isinstance(outcome, refresh.Refusal):
        if outcome is refresh.Refusal.REUSED:
            log.warning("refresh token reuse detected; family revoked")
        raise AuthError(_REFUSALS[outcome])
    return _pair(tokens, outcome)


async def sign_out(db: Database, token: str) -> None:
    """Revoke the refresh token's family. Unknown tokens are accepted silently: the outcome
    the client wants (that token no longer works) holds either way."""
    async with db.session() as session:
        await refresh.revoke(session, token)
