"""Security headers on every response, ``no-store`` where tokens or personal data travel, and
HSTS only when configured (issue 13).

The routes that need the database run against the accounts suite's embedded app; the others
against apps built by ``create_app`` without start-up (``/healthz``, unknown paths, the docs,
and a route that fails, need none of it).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.responses import Response

from server.app import create_app
from server.settings import Settings
from tests.accounts.helpers import bearer

COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def _secured(response: httpx.Response, *, no_store: bool) -> None:
    for name, value in COMMON.items():
        assert response.headers.get(name) == value, (name, response.request.url)
    assert response.headers["content-security-policy"] == API_CSP
    assert "strict-transport-security" not in response.headers  # not configured
    if no_store:
        assert response.headers.get("cache-control") == "no-store", response.request.url
    else:
        assert "no-store" not in response.headers.get("cache-control", "")


async def test_token_and_personal_routes_are_never_stored(api: httpx.AsyncClient) -> None:
    guest = await api.post("/api/v1/auth/guest")
    assert guest.status_code == 201
    _secured(guest, no_store=True)
    me = await api.get("/api/v1/users/me", headers=bearer(guest.json()))
    assert me.status_code == 200
    _secured(me, no_store=True)
    scans = await api.get("/api/v1/users/me/scans", headers=bearer(guest.json()))
    _secured(scans, no_store=True)
    refused = await api.get("/api/v1/users/me")  # an error of a personal route too
    assert refused.status_code == 401
    _secured(refused, no_store=True)
    refresh = await api.post("/api/v1/auth/refresh", json={"refresh_token": "unknown"})
    assert refresh.status_code == 401
    _secured(refresh, no_store=True)
    # A signed upload URL is a bearer credential for one PUT.
    upload = await api.post(
        "/api/v1/uploads",
        json={"content_type": "image/jpeg", "size": 1000},
        headers=bearer(guest.json()),
    )
    assert upload.status_code == 201, upload.text
    _secured(upload, no_store=True)
    # Public data is left to caches.
    search = await api.get("/api/v1/waste/items/search", params={"q": "페트병"})
    assert search.status_code == 200
    _secured(search, no_store=False)


@pytest.fixture
def bare(tmp_path: Path) -> httpx.AsyncClient:
    app = create_app(Settings(data_dir=tmp_path))

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    # Starlette re-raises an unexpected error after sending its 500: see the response instead.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_every_response_carries_the_headers(bare: httpx.AsyncClient) -> None:
    async with bare as http:
        health = await http.get("/healthz")
        assert health.status_code == 200
        _secured(health, no_store=False)
        missing = await http.get("/nowhere")
        assert missing.status_code == 404
        _secured(missing, no_store=False)
        schema = await http.get("/openapi.json")
        _secured(schema, no_store=False)
        # The JSON 500 comes from Starlette's outermost error middleware: still covered.
        crash = await http.get("/boom")
        assert crash.status_code == 500
        assert crash.json()["error"]["code"] == "internal"
        _secured(crash, no_store=False)


async def test_only_the_docs_pages_keep_a_policy_of_their_own(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))

    async def loose() -> Response:
        return Response("{}", headers={"content-security-policy": "default-src *"})

    app.add_api_route("/loose", loose)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        docs = await http.get("/docs")
        other = await http.get("/loose")
    assert docs.status_code == 200
    # The page's own, which allows its inline script by hash (tests/server/test_docs.py).
    policy = docs.headers["content-security-policy"]
    assert policy.startswith("default-src 'none'; script-src 'self' 'sha256-"), policy
    assert "frame-ancestors 'none'" in policy
    assert docs.headers["x-frame-options"] == "DENY"
    _secured(other, no_store=False)  # any other route's own policy is replaced


async def test_hsts_only_when_configured(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, hsts_max_age_s=31_536_000))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        health = await http.get("/healthz")
    assert health.headers["strict-transport-security"] == "max-age=31536000"
