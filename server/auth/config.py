"""Configuration of sign-in providers, refresh tokens and per-user limits.

They hang off the main ``Settings`` as ``accounts: AccountsSettings`` (env
``WASTECOACH_ACCOUNTS__...``, e.g. ``WASTECOACH_ACCOUNTS__PROVIDERS__KAKAO__CLIENT_ID``).

The provider defaults are the endpoints each provider documents for production; tests replace
them with URLs of local stand-ins. A provider with an empty ``client_id`` is disabled.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr, model_validator


class OAuthProviderSettings(BaseModel):
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    authorize_url: str
    token_url: str
    #: Kakao and Naver: the profile endpoint that also proves an access token is live.
    userinfo_url: str | None = None
    #: Kakao: the endpoint that says which app an access token was issued to, and our app's
    #: id there. With ``app_id`` set, a native sign-in must bring a token issued to our app;
    #: otherwise any app's Kakao token for the person would sign them in here.
    tokeninfo_url: str | None = None
    app_id: str | None = None
    #: Google: the key set that signs ID tokens, and the issuer they must name.
    jwks_url: str | None = None
    issuer: str | None = None
    scopes: tuple[str, ...] = ()
    #: Where the provider sends the browser back to; must be registered with the provider.
    redirect_uri: str = ""
    #: Further client ids whose ID tokens are accepted by the native exchange (Google issues
    #: iOS and Android apps their own client ids).
    extra_audiences: tuple[str, ...] = ()
    #: Whole-request deadline for every call to this provider.
    timeout_s: float = Field(default=5.0, gt=0)

    @property
    def enabled(self) -> bool:
        return bool(self.client_id)


def _default_providers() -> dict[str, OAuthProviderSettings]:
    return {
        # https://developers.kakao.com/docs/latest/ko/kakaologin/rest-api
        "kakao": OAuthProviderSettings(
            authorize_url="https://kauth.kakao.com/oauth/authorize",
            token_url="https://kauth.kakao.com/oauth/token",
            userinfo_url="https://kapi.kakao.com/v2/user/me",
            tokeninfo_url="https://kapi.kakao.com/v1/user/access_token_info",
            scopes=("profile_nickname",),
        ),
        # https://developers.naver.com/docs/login/api/api.md
        "naver": OAuthProviderSettings(
            authorize_url="https://nid.naver.com/oauth2.0/authorize",
            token_url="https://nid.naver.com/oauth2.0/token",
            userinfo_url="https://openapi.naver.com/v1/nid/me",
        ),
        # https://developers.google.com/identity/openid-connect/openid-connect
        "google": OAuthProviderSettings(
            authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
            token_url="https://oauth2.googleapis.com/token",
            jwks_url="https://www.googleapis.com/oauth2/v3/certs",
            issuer="https://accounts.google.com",
            scopes=("openid", "profile"),
        ),
    }


class AccountsSettings(BaseModel):
    providers: dict[str, OAuthProviderSettings] = Field(default_factory=_default_providers)
    #: Lifetime of a refresh token; each use replaces it with a fresh one of the same lifetime.
    refresh_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    #: A refresh token presented again this soon after its first use is taken for a race of
    #: the same app (two requests at once), not a copy: it gets a successor of its own instead
    #: of revoking the sign-in. 0 turns the window off. Kept short: within it, a copied token
    #: is not detected either.
    refresh_grace_s: float = Field(default=5.0, ge=0, le=60)
    #: How long a started sign-in (state + PKCE verifier) may take to come back.
    state_ttl_s: int = Field(default=600, ge=30)
    #: How long a fetched Google key set is trusted before it is fetched again.
    jwks_cache_s: int = Field(default=3600, ge=0)
    scans_per_minute: int = Field(default=10, ge=1)
    scans_per_day: int = Field(default=200, ge=1)
    chats_per_minute: int = Field(default=20, ge=1)
    chats_per_day: int = Field(default=300, ge=1)
    #: Guest accounts one client address may create (``POST /api/v1/auth/guest``), per minute
    #: and per day (KST). Without them the per-user budgets above could be escaped by minting
    #: a new guest for every few scans. An IPv6 address counts by its /64 (one subscriber's
    #: network); many phones behind one carrier NAT share an address, hence room for a crowd.
    guests_per_minute: int = Field(default=10, ge=1)
    guests_per_day: int = Field(default=100, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _merge_provider_defaults(cls, data: Any) -> Any:
        # A partial override from the environment (only a client id and secret, say) keeps the
        # documented endpoints of that provider, and providers not mentioned keep theirs.
        if not isinstance(data, dict) or not isinstance(data.get("providers"), dict):
            return data
        merged: dict[str, Any] = {
            name: default.model_dump() for name, default in _default_providers().items()
        }
        for name, value in data["providers"].items():
            if isinstance(value, dict) and name in merged:
                merged[name] = {**merged[name], **value}
            else:
                merged[name] = value
        return {**data, "providers": merged}
