"""Who a provider says the person is: Google ID tokens, Kakao and Naver user-info.

Google: an ID token is an RS256 JWT signed with a key from Google's published key set; we check
the signature against that set, then issuer, audience (our client id) and expiry. Kakao and
Naver hand out opaque access tokens: the only way to know one is live, and whose it is, is to
call the provider's user-info endpoint with it.

ID tokens are verified with python-jose, the JOSE library our own tokens use
(``authlib.jose`` is deprecated and warns on import).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from jose import jwk, jwt
from jose.exceptions import ExpiredSignatureError, JOSEError, JWTClaimsError

from server.auth.config import OAuthProviderSettings
from server.auth.errors import ProviderRefused, ProviderUnavailable

log = logging.getLogger(__name__)

#: Google signs ID tokens with RS256 only; anything else (``none``, HS256 keyed with the
#: public key...) is refused before the signature is looked at.
ID_TOKEN_ALGORITHMS = ["RS256"]
#: Clock skew tolerated on ``exp``/``iat`` between us and the provider.
LEEWAY_S = 60


@dataclass(frozen=True, slots=True)
class ProviderProfile:
    provider: str
    #: The provider's stable id of the person: Google ``sub``, Kakao ``id``, Naver ``response.id``.
    subject: str
    display_name: str | None


# --------------------------------------------------------------------------- Google


@dataclass(frozen=True, slots=True)
class KeySet:
    """A provider's published keys that can check an RS256 signature, with their ``kid``."""

    keys: tuple[tuple[str | None, Any], ...]

    @classmethod
    def from_jwks(cls, document: Any) -> KeySet:
        """Parse ``{"keys": [JWK, ...]}``; raise ``ValueError`` when it is not a key set.

        Keys of other types (EC, symmetric) are left out: they cannot check the one algorithm
        we accept, and a symmetric one must never be tried as a verification key.
        """
        raw = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(raw, list) or not all(isinstance(k, dict) for k in raw):
            raise ValueError("not a JWK set")
        try:
            keys = tuple(
                (str(k["kid"]) if "kid" in k else None, jwk.construct(k, "RS256"))
                for k in raw
                if k.get("kty") == "RSA"
            )
        except JOSEError as exc:
            raise ValueError(f"an RSA key of the set is unreadable: {exc}") from exc
        return cls(keys)

    def has(self, kid: str) -> bool:
        return any(key_kid == kid for key_kid, _ in self.keys)

    def candidates(self, kid: str | None) -> list[Any]:
        """The keys a token naming ``kid`` may be signed with (all of them without a kid)."""
        return [key for key_kid, key in self.keys if kid is None or key_kid == kid]


class JwksCache:
    """The provider's public keys, fetched on first use and again when stale or when a token
    names a key we have not seen (the provider rotated), at most once per ``min_refetch_s``."""

    def __init__(self, url: str, *, max_age_s: float, timeout_s: float, min_refetch_s: float = 30):
        self.url = url
        self.max_age_s = max_age_s
        self.timeout_s = timeout_s
        self.min_refetch_s = min_refetch_s
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, kid: str | None) -> KeySet:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            known = self._keys is not None and (kid is None or self._keys.has(kid))
            if (
                self._keys is None
                or age > self.max_age_s
                or (not known and age > self.min_refetch_s)
            ):
                try:
                    self._keys = await self._fetch()
                    self._fetched_at = time.monotonic()
                except ProviderUnavailable:
                    if self._keys is None:
                        raise
                    # Keys rotate slowly and overlap: an outage of the key endpoint should not
                    # stop sign-in while we hold keys. Try again after ``min_refetch_s``.
                    self._fetched_at = time.monotonic() - self.max_age_s + self.min_refetch_s
            return self._keys

    async def _fetch(self) -> KeySet:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as http:
                response = await http.get(self.url)
            response.raise_for_status()
            return KeySet.from_jwks(response.json())
        except httpx.HTTPError as exc:
            log.warning("jwks fetch failed: %s (%s)", type(exc).__name__, self.url)
            raise ProviderUnavailable("could not fetch the provider's signing keys") from exc
        except ValueError as exc:
            log.warning("jwks from %s is not a key set: %s", self.url, type(exc).__name__)
            raise ProviderUnavailable("the provider's signing keys are unreadable") from exc


def _accepted_issuers(issuer: str) -> list[str]:
    # Google documents both spellings of its issuer in ID tokens.
    return sorted({issuer, issuer.removeprefix("https://")})


async def verify_google_id_token(
    config: OAuthProviderSettings,
    keys: JwksCache,
    id_token: str,
    *,
    nonce: str | None = None,
    extra_audiences: bool = False,
) -> ProviderProfile:
    """Check an ID token's signature, issuer, audience and expiry; return whose it is."""
    try:
        header = jwt.get_unverified_header(id_token)
    except JOSEError as exc:
        raise ProviderRefused("the ID token is not a JWT") from exc
    if header.get("alg") not in ID_TOKEN_ALGORITHMS:
        raise ProviderRefused("the ID token's algorithm is not accepted")
    kid = header.get("kid")
    key_set = await keys.get(kid)
    candidates = key_set.candidates(kid)
    if not candidates:
        raise ProviderRefused("the ID token's signature does not verify")
    try:
        # Signature, expiry and not-before here (with leeway); issuer, audience, subject and
        # nonce below, where the refusal can name the claim without quoting its value.
        claims = jwt.decode(
            id_token,
            candidates,
            algorithms=ID_TOKEN_ALGORITHMS,
            options={
                "verify_aud": False,
                "verify_iss": False,
                "verify_at_hash": False,
                "require_exp": True,
                "leeway": LEEWAY_S,
            },
        )
    except ExpiredSignatureError as exc:
        raise ProviderRefused("the ID token has expired") from exc
    except JWTClaimsError as exc:
        raise ProviderRefused("the ID token is not valid yet or has a malformed claim") from exc
    except JOSEError as exc:
        raise ProviderRefused("the ID token's signature does not verify") from exc
    audiences = [config.client_id, *(config.extra_audiences if extra_audiences else ())]
    for claim, ok in (
        ("iss", claims.get("iss") in _accepted_issuers(config.issuer or "")),
        ("aud", _names_audience(claims.get("aud"), audiences)),
        ("sub", isinstance(claims.get("sub"), str) and bool(claims["sub"])),
        ("nonce", nonce is None or claims.get("nonce") == nonce),
    ):
        if not ok:
            # The claim's name only: the claim values themselves stay out of messages and logs.
            raise ProviderRefused(f"the ID token is not for this app (claim {claim!r})")
    name = claims.get("name") or claims.get("given_name")
    return ProviderProfile("google", str(claims["sub"]), str(name) if name else None)


def _names_audience(aud: Any, audiences: list[str]) -> bool:
    """``aud`` is one string or a list of them (RFC 7519); one of ours must be among them."""
    named = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    return any(a in audiences for a in named if isinstance(a, str) and a)


# --------------------------------------------------------------------------- Kakao and Naver


async def _userinfo(
    config: OAuthProviderSettings, provider: str, access_token: str, url: str | None = None
) -> Any:
    url = url or config.userinfo_url
    if not url:
        raise ProviderUnavailable(f"{provider} has no user-info endpoint configured")
    try:
        async with httpx.AsyncClient(timeout=config.timeout_s) as http:
            response = await http.get(url, headers={"Authorization": f"Bearer {access_token}"})
    except httpx.TimeoutException as exc:
        log.warning("%s user-info timed out", provider)
        raise ProviderUnavailable(f"{provider} did not answer in time") from exc
    except httpx.HTTPError as exc:
        log.warning("%s user-info failed: %s", provider, type(exc).__name__)
        raise ProviderUnavailable(f"{provider} could not be reached") from exc
    if response.status_code in (400, 401, 403):
        log.info("%s refused an access token: HTTP %s", provider, response.status_code)
        raise ProviderRefused(f"{provider} did not accept the access token")
    if response.status_code != 200:
        log.warning("%s user-info answered HTTP %s", provider, response.status_code)
        raise ProviderUnavailable(f"{provider} answered with an error")
    try:
        return response.json()
    except ValueError as exc:
        raise ProviderUnavailable(f"{provider} answered something that is not JSON") from exc


async def kakao_app_check(config: OAuthProviderSettings, access_token: str) -> None:
    """``GET /v1/user/access_token_info``: ``{"id": 123, "expires_in": 7199, "app_id": 456}``.

    Native sign-in only: a token from the code exchange was issued to us by construction.
    """
    if not config.app_id:
        return
    info = await _userinfo(config, "kakao", access_token, url=config.tokeninfo_url)
    if not isinstance(info, dict) or str(info.get("app_id")) != config.app_id:
        raise ProviderRefused("the kakao access token was issued to another app")


async def kakao_profile(config: OAuthProviderSettings, access_token: str) -> ProviderProfile:
    """``GET /v2/user/me``: ``{"id": 123, "kakao_account": {"profile": {"nickname": ...}}}``."""
    body = await _userinfo(config, "kakao", access_token)
    subject = body.get("id") if isinstance(body, dict) else None
    if not isinstance(subject, int | str) or isinstance(subject, bool) or subject == "":
        raise ProviderUnavailable("kakao's user-info has no user id")
    account = body.get("kakao_account") or {}
    profile = account.get("profile") or {} if isinstance(account, dict) else {}
    nickname = profile.get("nickname") if isinstance(profile, dict) else None
    return ProviderProfile("kakao", str(subject), str(nickname) if nickname else None)


async def naver_profile(config: OAuthProviderSettings, access_token: str) -> ProviderProfile:
    """``GET /v1/nid/me``: ``{"resultcode": "00", "response": {"id": ..., "nickname": ...}}``."""
    body = await _userinfo(config, "naver", access_token)
    if not isinstance(body, dict) or body.get("resultcode") != "00":
        # Naver reports some failures with HTTP 200 and a non-"00" result code.
        raise ProviderRefused("naver did not accept the access token")
    response = body.get("response") or {}
    subject = response.get("id") if isinstance(response, dict) else None
    if not isinstance(subject, str) or not subject:
        raise ProviderUnavailable("naver's user-info has no user id")
    nickname = response.get("nickname") or response.get("name")
    return ProviderProfile("naver", subject, str(nickname) if nickname else None)


USERINFO_PROVIDERS = {"kakao": kakao_profile, "naver": naver_profile}
