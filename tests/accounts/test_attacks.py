"""Every refused input of the accounts issue: each gets a clear error, creates no account,
links nothing, and leaves no secret in the logs.

Provider-side attacks run against the local stand-in providers over HTTP (``standin.py``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from jose import jwt as jose_jwt
from sqlalchemy import func, select, update

from server.auth import refresh
from server.auth.models import Identity, RefreshToken
from server.auth.tokens import key_id
from server.container import Container
from server.users.models import User
from tests.accounts.helpers import bearer, browser_sign_in, provider_redirect, start
from tests.accounts.standin import Person, SigningKey, StandIn


async def _counts(services: Container) -> tuple[int, int]:
    async with services.db.session() as session:
        users = await session.scalar(select(func.count()).select_from(User))
        links = await session.scalar(select(func.count()).select_from(Identity))
    return int(users or 0), int(links or 0)


@pytest.fixture
def secrets_logged(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Collects secrets the test handles; none of them may appear in the server's logs.

    Only the server's own loggers (and Authlib's) are checked: the test's HTTP client logs the
    callback URLs it requests, code and state included, as any client's debug log would.
    """
    caplog.set_level(logging.DEBUG)
    found: list[str] = []
    yield found
    records = [r for r in caplog.get_records("call") if r.name.startswith(("server", "authlib"))]
    assert records, "the server logged nothing; the check would be vacuous"
    text = "\n".join(r.getMessage() for r in records)
    leaked = [s for s in found if s and s in text]
    assert not leaked, "secrets in logs"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# --------------------------------------------------------------------------- our access tokens


def _claims(services: Container, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "someone",
        "iss": services.tokens.issuer,
        "aud": services.tokens.audience,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "x",
        "typ": "access",
        "guest": False,
    }
    claims.update(overrides)
    return claims


def _secret(services: Container) -> str:
    secret: str = services.tokens._secret  # the server's own key, to mint near-valid tokens
    return secret


async def _refused(api: httpx.AsyncClient, token: str, code: str = "auth_invalid") -> str:
    response = await api.get("/api/v1/users/me", headers=bearer(token))
    assert response.status_code == 401, response.text
    body = response.json()["error"]
    assert body["code"] == code
    message: str = body["message"]
    return message


async def test_forged_signature(api: httpx.AsyncClient, services: Container) -> None:
    kid = key_id(_secret(services))
    token = jose_jwt.encode(
        _claims(services), "not-the-key", algorithm="HS256", headers={"kid": kid}
    )
    assert "not valid" in await _refused(api, token)


async def test_expired_access_token(api: httpx.AsyncClient, services: Container) -> None:
    token = services.tokens.issue_access("someone", guest=False, ttl_s=-10)
    assert "expired" in await _refused(api, token, code="auth_expired")


async def test_wrong_audience(api: httpx.AsyncClient, services: Container) -> None:
    secret = _secret(services)
    token = jose_jwt.encode(
        _claims(services, aud="someone-else"),
        secret,
        algorithm="HS256",
        headers={"kid": key_id(secret)},
    )
    assert "not valid" in await _refused(api, token)


@pytest.mark.parametrize("claim", ["aud", "iss"])
async def test_missing_audience_or_issuer(
    api: httpx.AsyncClient, services: Container, claim: str
) -> None:
    """Signed with our key for a real account, but naming no audience (or issuer): refused.
    python-jose skips the audience check when the claim is absent."""
    guest = (await api.post("/api/v1/auth/guest")).json()
    secret = _secret(services)

    def token(**claims: object) -> str:
        signed: str = jose_jwt.encode(
            claims, secret, algorithm="HS256", headers={"kid": key_id(secret)}
        )
        return signed

    complete = _claims(services, sub=guest["user_id"])
    ok = await api.get("/api/v1/users/me", headers=bearer(token(**complete)))
    assert ok.status_code == 200, ok.text  # the same token with the claim is accepted
    without = {k: v for k, v in complete.items() if k != claim}
    assert "not valid" in await _refused(api, token(**without))
    assert services.tokens.verify_access(token(**complete)).user_id == guest["user_id"]


async def test_wrong_issuer(api: httpx.AsyncClient, services: Container) -> None:
    secret = _secret(services)
    token = jose_jwt.encode(
        _claims(services, iss="evil"), secret, algorithm="HS256", headers={"kid": key_id(secret)}
    )
    await _refused(api, token)


async def test_alg_none(api: httpx.AsyncClient, services: Container) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": key_id(_secret(services))}
    token = f"{_b64(header)}.{_b64(_claims(services))}."
    assert "algorithm" in await _refused(api, token)


async def test_unknown_key_id(api: httpx.AsyncClient, services: Container) -> None:
    token = jose_jwt.encode(
        _claims(services), _secret(services), algorithm="HS256", headers={"kid": "rotated-out"}
    )
    assert "unknown key" in await _refused(api, token)


async def test_garbage_token(api: httpx.AsyncClient) -> None:
    await _refused(api, "not.a.jwt")
    response = await api.get("/api/v1/users/me")
    assert response.status_code == 401


# --------------------------------------------------------------------------- refresh tokens


async def test_refresh_rotates(api: httpx.AsyncClient, standin: StandIn) -> None:
    tokens = await browser_sign_in(api, "kakao")
    rotated = await api.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert new["user_id"] == tokens["user_id"]
    me = await api.get("/api/v1/users/me", headers=bearer(new))
    assert me.status_code == 200


async def test_replayed_refresh_token_revokes_the_family(
    api: httpx.AsyncClient, services: Container, secrets_logged: list[str]
) -> None:
    tokens = await browser_sign_in(api, "naver")
    first = tokens["refresh_token"]
    second = (await api.post("/api/v1/auth/refresh", json={"refresh_token": first})).json()
    third = (
        await api.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    ).json()
    secrets_logged += [first, second["refresh_token"], third["refresh_token"]]

    # The first token, already spent, comes back: someone copied it.
    replay = await api.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert replay.status_code == 401
    assert "already used" in replay.json()["error"]["message"]

    # The newest token of that family, never used, is dead too.
    latest = await api.post("/api/v1/auth/refresh", json={"refresh_token": third["refresh_token"]})
    assert latest.status_code == 401
    assert "revoked" in latest.json()["error"]["message"]
    async with services.db.session() as session:
        alive = await session.scalar(
            select(func.count())
            .select_from(RefreshToken)
            .where(RefreshToken.user_id == tokens["user_id"], RefreshToken.revoked_at.is_(None))
        )
    assert alive == 0


async def test_reuse_revokes_only_that_family(api: httpx.AsyncClient) -> None:
    """A second sign-in (another device) is another family and survives the first's revocation."""
    phone = await browser_sign_in(api, "google")
    tablet = await browser_sign_in(api, "google")
    assert phone["user_id"] == tablet["user_id"]
    await api.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    await api.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    still = await api.post("/api/v1/auth/refresh", json={"refresh_token": tablet["refresh_token"]})
    assert still.status_code == 200


async def _race_two_refreshes(api: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    same = {"refresh_token": tokens["refresh_token"]}
    both = await asyncio.gather(*(api.post("/api/v1/auth/refresh", json=same) for _ in range(2)))
    assert [r.status_code for r in both] == [200, 200], [r.text for r in both]
    successors = [r.json()["refresh_token"] for r in both]
    assert len(set(successors)) == 2
    # Neither the winner's nor the loser's successor was revoked: each works once more.
    for successor in successors:
        again = await api.post("/api/v1/auth/refresh", json={"refresh_token": successor})
        assert again.status_code == 200, again.text


async def test_two_refreshes_at_once_keep_the_sign_in(
    api: httpx.AsyncClient, services: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app refreshing from two places at the same moment is not a thief: within the grace
    window the second use gets a successor too, and the family lives."""
    monkeypatch.setattr(services.accounts.settings, "refresh_grace_s", 5.0)
    await _race_two_refreshes(api, await browser_sign_in(api, "naver"))


async def test_two_refreshes_at_once_keep_the_sign_in_on_postgresql(
    distributed: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, api = distributed
    monkeypatch.setattr(app.state.container.accounts.settings, "refresh_grace_s", 5.0)
    await _race_two_refreshes(api, await browser_sign_in(api, "naver"))


async def test_reuse_after_the_grace_window_still_revokes_the_family(
    api: httpx.AsyncClient, services: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.accounts.settings, "refresh_grace_s", 5.0)
    tokens = await browser_sign_in(api, "kakao")
    first = tokens["refresh_token"]
    second = (await api.post("/api/v1/auth/refresh", json={"refresh_token": first})).json()
    # The first token was spent 6 s ago: past the window.
    async with services.db.session() as session:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == refresh.token_hash(first))
            .values(used_at=datetime.now(UTC) - timedelta(seconds=6))
        )
    replay = await api.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert replay.status_code == 401
    assert "already used" in replay.json()["error"]["message"]
    latest = await api.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert latest.status_code == 401
    assert "revoked" in latest.json()["error"]["message"]


async def test_logout_revokes(api: httpx.AsyncClient) -> None:
    tokens = await browser_sign_in(api, "kakao")
    rotated = (
        await api.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).json()
    out = await api.post("/api/v1/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    assert out.status_code == 204
    after = await api.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert after.status_code == 401
    assert "revoked" in after.json()["error"]["message"]
    # Logging out twice, or with a made-up token, is not an error.
    again = await api.post("/api/v1/auth/logout", json={"refresh_token": "made-up"})
    assert again.status_code == 204


async def test_unknown_refresh_token(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/auth/refresh", json={"refresh_token": "guess"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth_invalid"


async def test_expired_refresh_token(api: httpx.AsyncClient, services: Container) -> None:
    tokens = await browser_sign_in(api, "kakao")
    async with services.db.session() as session:
        issued = await refresh.issue(session, user_id=tokens["user_id"], ttl_s=-1)
    response = await api.post("/api/v1/auth/refresh", json={"refresh_token": issued.token})
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


# --------------------------------------------------------------------------- OAuth callback


async def test_replayed_state(
    api: httpx.AsyncClient, services: Container, secrets_logged: list[str]
) -> None:
    url, state = await start(api, "kakao")
    back = await provider_redirect(url)
    first = await api.get(back)
    assert first.status_code == 200
    before = await _counts(services)
    secrets_logged += [state, parse_qs(urlsplit(back).query)["code"][0]]

    replay = await api.get(back)
    assert replay.status_code == 401
    assert "already used" in replay.json()["error"]["message"]
    assert await _counts(services) == before


async def test_made_up_state(api: httpx.AsyncClient) -> None:
    response = await api.get(
        "/api/v1/auth/google/callback", params={"code": "c", "state": "forged"}
    )
    assert response.status_code == 401
    missing = await api.get("/api/v1/auth/google/callback", params={"code": "c"})
    assert missing.status_code == 401


async def test_state_of_another_provider(api: httpx.AsyncClient) -> None:
    _, state = await start(api, "kakao")
    response = await api.get("/api/v1/auth/naver/callback", params={"code": "c", "state": state})
    assert response.status_code == 401
    assert "another provider" in response.json()["error"]["message"]


@pytest.mark.parametrize("provider", ["kakao", "naver", "google"])
async def test_mismatched_pkce_verifier(
    api: httpx.AsyncClient, services: Container, provider: str, secrets_logged: list[str]
) -> None:
    """Code injection: a code obtained under one sign-in (its PKCE challenge) is replayed with
    another sign-in's state, so our server sends that other sign-in's verifier."""
    victim_url, victim_state = await start(api, provider)
    victim_back = await provider_redirect(victim_url)
    stolen_code = parse_qs(urlsplit(victim_back).query)["code"][0]
    _, attacker_state = await start(api, provider)
    secrets_logged += [stolen_code, victim_state, attacker_state]
    before = await _counts(services)

    response = await api.get(
        f"/api/v1/auth/{provider}/callback", params={"code": stolen_code, "state": attacker_state}
    )
    assert response.status_code == 401, response.text
    assert "invalid_grant" in response.json()["error"]["message"]
    assert await _counts(services) == before


async def test_provider_reports_error_at_callback(
    api: httpx.AsyncClient, services: Container
) -> None:
    _, state = await start(api, "kakao")
    before = await _counts(services)
    response = await api.get(
        "/api/v1/auth/kakao/callback", params={"state": state, "error": "access_denied"}
    )
    assert response.status_code == 401
    assert "access_denied" in response.json()["error"]["message"]
    # The state is spent even so.
    again = await api.get("/api/v1/auth/kakao/callback", params={"state": state, "code": "x"})
    assert again.status_code == 401
    assert await _counts(services) == before


@pytest.mark.parametrize("provider", ["kakao", "naver", "google"])
@pytest.mark.parametrize("failure", ["500", "slow"])
async def test_token_endpoint_fails(
    api: httpx.AsyncClient, standin: StandIn, services: Container, provider: str, failure: str
) -> None:
    url, _ = await start(api, provider)
    back = await provider_redirect(url)
    before = await _counts(services)
    standin.fail[provider] = failure
    response = await api.get(back)
    assert response.status_code == 502, response.text
    body = response.json()["error"]
    assert body["code"] == "provider_unavailable"
    assert provider in body["message"]
    assert await _counts(services) == before


# --------------------------------------------------------------------------- native tokens


@pytest.mark.parametrize("provider", ["kakao", "naver"])
async def test_native_access_token_refused(
    api: httpx.AsyncClient,
    services: Container,
    standin: StandIn,
    provider: str,
    secrets_logged: list[str],
) -> None:
    before = await _counts(services)
    bogus = "forged-access-token"
    other = standin.access_token_for("naver" if provider == "kakao" else "kakao", Person("p", "p"))
    secrets_logged += [bogus, other]
    for token in (bogus, other):
        response = await api.post(f"/api/v1/auth/{provider}/token", json={"access_token": token})
        assert response.status_code == 401, response.text
        assert "did not accept" in response.json()["error"]["message"]
    assert await _counts(services) == before


@pytest.mark.parametrize("provider", ["kakao", "naver"])
@pytest.mark.parametrize("failure", ["500", "slow"])
async def test_native_userinfo_fails(
    api: httpx.AsyncClient, standin: StandIn, services: Container, provider: str, failure: str
) -> None:
    token = standin.access_token_for(provider, Person(f"{provider}-down", "x"))
    before = await _counts(services)
    standin.fail[provider] = failure
    response = await api.post(f"/api/v1/auth/{provider}/token", json={"access_token": token})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_unavailable"
    assert await _counts(services) == before


async def test_native_kakao_token_of_another_app(
    api: httpx.AsyncClient, standin: StandIn, services: Container
) -> None:
    """A live Kakao token the person gave some other app cannot sign them in here."""
    token = standin.access_token_for("kakao", Person("kakao-elsewhere", "x"), app_id=2002)
    before = await _counts(services)
    response = await api.post("/api/v1/auth/kakao/token", json={"access_token": token})
    assert response.status_code == 401
    assert "another app" in response.json()["error"]["message"]
    assert await _counts(services) == before


def _google_attacks(standin: StandIn) -> dict[str, str]:
    person = Person("google-victim", "v")
    other_key = SigningKey.generate("g1")
    good = standin.id_token(person)
    header, payload, _ = good.split(".")
    return {
        "forged signature": standin.id_token(person, key=other_key),
        "expired": standin.id_token(person, exp_in=-600),
        "wrong audience": standin.id_token(person, aud="another-app"),
        "wrong issuer": standin.id_token(person, iss="https://evil.example"),
        "alg none": f"{_b64({'alg': 'none', 'kid': 'g1'})}.{payload}.",
        "hs256 keyed with public key": jose_jwt.encode(
            json.loads(base64.urlsafe_b64decode(payload + "==")),
            "x",
            algorithm="HS256",
            headers={"kid": "g1"},
        ),
        "tampered payload": f"{header}.{_b64({'sub': 'admin', 'aud': 'google-client'})}."
        + good.split(".")[2],
        "not a jwt": "garbage",
    }


@pytest.mark.parametrize(
    "attack",
    [
        "forged signature",
        "expired",
        "wrong audience",
        "wrong issuer",
        "alg none",
        "hs256 keyed with public key",
        "tampered payload",
        "not a jwt",
    ],
)
async def test_google_id_token_refused(
    api: httpx.AsyncClient,
    standin: StandIn,
    services: Container,
    attack: str,
    secrets_logged: list[str],
) -> None:
    token = _google_attacks(standin)[attack]
    secrets_logged.append(token)
    before = await _counts(services)
    response = await api.post("/api/v1/auth/google/token", json={"id_token": token})
    assert response.status_code == 401, (attack, response.text)
    assert response.json()["error"]["code"] == "auth_invalid"
    assert await _counts(services) == before


async def test_google_web_flow_checks_nonce(api: httpx.AsyncClient, standin: StandIn) -> None:
    """An ID token minted for another sign-in (another nonce) is refused at the callback."""
    url, _ = await start(api, "google")
    back = await provider_redirect(url)
    code = parse_qs(urlsplit(back).query)["code"][0]
    standin.codes[code].nonce = "a-different-nonce"
    response = await api.get(back)
    assert response.status_code == 401
    assert "nonce" in response.json()["error"]["message"]


async def test_google_keys_unavailable(
    api: httpx.AsyncClient, standin: StandIn, services: Container
) -> None:
    from server.auth.deps import accounts as accounts_dep

    class _Req:  # the dependency only looks at request.app.state
        app = api._transport.app  # type: ignore[attr-defined]

    state = accounts_dep(_Req())  # type: ignore[arg-type]
    state._jwks.clear()  # forget cached keys so the next token needs a fetch
    standin.fail["google"] = "500"
    response = await api.post(
        "/api/v1/auth/google/token", json={"id_token": standin.id_token(Person("g-x", "x"))}
    )
    assert response.status_code == 502
    assert "signing keys" in response.json()["error"]["message"]


def test_guest_login_is_off_by_default_in_production() -> None:
    from pydantic import SecretStr

    from server.settings import AuthSettings, Mode, Settings

    production = Settings(
        mode=Mode.DISTRIBUTED,
        database_url="postgresql+asyncpg://db/wastecoach",
        auth=AuthSettings(jwt_secret=SecretStr("s")),
    )
    assert production.guest_enabled is False
    assert Settings(mode=Mode.EMBEDDED).guest_enabled is True


async def test_jwks_outage_keeps_known_keys(standin: StandIn) -> None:
    from server.auth.providers import JwksCache

    cache = JwksCache(f"{standin.base_url}/google/oauth2/v3/certs", max_age_s=0, timeout_s=2.0)
    first = await cache.get("g1")
    standin.fail["google"] = "500"
    assert await cache.get("g1") is first
