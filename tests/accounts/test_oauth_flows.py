"""Sign-in with Kakao, Naver and Google, end to end, against their local stand-ins over HTTP.

The stand-in providers (``standin.py``) implement each provider's documented endpoints; the
real ones cannot be reached from tests.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from server.auth.models import Identity, OAuthState
from server.container import Container
from tests.accounts.helpers import bearer, browser_sign_in, provider_redirect, start
from tests.accounts.standin import Person, StandIn

PROVIDERS = ["kakao", "naver", "google"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_browser_flow_signs_in_and_links_by_provider_id(
    api: httpx.AsyncClient, standin: StandIn, provider: str
) -> None:
    standin.person[provider] = Person(f"{provider}-web-1", "민지")
    first = await browser_sign_in(api, provider)
    assert first["token_type"] == "bearer"
    assert first["refresh_token"] and first["expires_in"] > 0

    me = await api.get("/api/v1/users/me", headers=bearer(first))
    assert me.status_code == 200, me.text
    assert me.json()["providers"] == [provider]
    assert me.json()["is_guest"] is False
    assert me.json()["display_name"] == "민지"

    # The same person again is the same account; another person is another account.
    again = await browser_sign_in(api, provider)
    assert again["user_id"] == first["user_id"]
    standin.person[provider] = Person(f"{provider}-web-2", "준호")
    other = await browser_sign_in(api, provider)
    assert other["user_id"] != first["user_id"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_authorize_url_carries_state_and_s256_challenge(
    api: httpx.AsyncClient, provider: str
) -> None:
    url, state = await start(api, provider)
    query = parse_qs(urlsplit(url).query)
    assert query["state"] == [state]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256, unpadded
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == [f"http://testserver/api/v1/auth/{provider}/callback"]
    # The verifier never leaves the server.
    assert "code_verifier" not in query
    if provider == "google":
        assert query["nonce"][0]


async def test_state_is_stored_hashed(api: httpx.AsyncClient, services: Container) -> None:
    _, state = await start(api, "kakao")
    async with services.db.session() as session:
        hashes = set(await session.scalars(select(OAuthState.state_hash)))
    assert state not in hashes


async def test_native_google_id_token(
    api: httpx.AsyncClient, standin: StandIn, services: Container
) -> None:
    person = Person("google-native-1", "Ana")
    response = await api.post(
        "/api/v1/auth/google/token", json={"id_token": standin.id_token(person)}
    )
    assert response.status_code == 200, response.text
    tokens = response.json()

    # The web flow for the same Google account lands on the same user.
    standin.person["google"] = person
    web = await browser_sign_in(api, "google")
    assert web["user_id"] == tokens["user_id"]
    async with services.db.session() as session:
        links = await session.scalar(
            select(func.count())
            .select_from(Identity)
            .where(Identity.provider_user_id == "google-native-1")
        )
    assert links == 1


@pytest.mark.parametrize("provider", ["kakao", "naver"])
async def test_native_access_token_verified_with_userinfo(
    api: httpx.AsyncClient, standin: StandIn, provider: str
) -> None:
    person = Person(f"{provider}-native-1", "서연")
    token = standin.access_token_for(provider, person)
    response = await api.post(f"/api/v1/auth/{provider}/token", json={"access_token": token})
    assert response.status_code == 200, response.text
    body = response.json()
    me = await api.get("/api/v1/users/me", headers=bearer(body))
    assert me.json()["providers"] == [provider]
    assert me.json()["display_name"] == "서연"

    again = await api.post(f"/api/v1/auth/{provider}/token", json={"access_token": token})
    assert again.json()["user_id"] == body["user_id"]


async def test_same_subject_at_two_providers_is_two_accounts(
    api: httpx.AsyncClient, standin: StandIn
) -> None:
    """Links are (provider, provider user id): equal ids at different providers never merge."""
    person = Person("same-id-everywhere", "Kim")
    kakao = await api.post(
        "/api/v1/auth/naver/token",
        json={"access_token": standin.access_token_for("naver", person)},
    )
    google = await api.post(
        "/api/v1/auth/google/token", json={"id_token": standin.id_token(person)}
    )
    assert kakao.status_code == google.status_code == 200
    assert kakao.json()["user_id"] != google.json()["user_id"]


async def test_unknown_or_unconfigured_provider(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/auth/facebook/authorize")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_native_exchange_needs_the_right_token(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/auth/google/token", json={"access_token": "x"})
    assert response.status_code == 422
    response = await api.post("/api/v1/auth/kakao/token", json={"id_token": "x"})
    assert response.status_code == 422


async def test_redirect_goes_to_the_provider(api: httpx.AsyncClient, standin: StandIn) -> None:
    response = await api.get("/api/v1/auth/naver/authorize")
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(f"{standin.base_url}/naver/oauth2.0/authorize?")
    back = await provider_redirect(location)
    assert "code=" in back and "state=" in back
