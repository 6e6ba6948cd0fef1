"""GET /api/v1/locations/nearby and /{id} over HTTP (ASGI transport) on a tiny app.

The app is built here with only this router and the same domain-error handler as
``server.app``, with ``app.state.db`` set the way the real app sets it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from server.db import Database
from server.errors import WasteCoachError
from server.locations.endpoints import router


@pytest.fixture(scope="module")
async def http(loaded_db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.db = loaded_db

    @app.exception_handler(WasteCoachError)
    async def _domain_error(_: Request, exc: WasteCoachError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status,
            content={"error": {"code": exc.code.value, "message": exc.message}},
        )

    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_battery_nearest_five_at_city_hall(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/api/v1/locations/nearby",
        params={"lat": 37.5665, "lon": 126.9780, "stream": "battery", "limit": 5},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    places = body["places"]
    assert len(places) == 5
    assert {p["kind"] for p in places} == {"lamp_battery_bin"}
    distances = [p["distance_m"] for p in places]
    assert distances == sorted(distances)
    first = places[0]
    google = parse_qs(urlsplit(first["links"]["google"]).query)
    assert google["travelmode"] == ["walking"]
    assert first["links"]["naver"].startswith("nmap://route/walk?")

    detail = await http.get(
        f"/api/v1/locations/{first['id']}", params={"lat": 37.5665, "lon": 126.9780}
    )
    assert detail.status_code == 200
    assert detail.json()["place"]["id"] == first["id"]
    assert detail.json()["place"]["distance_m"] == pytest.approx(first["distance_m"], abs=0.1)


async def test_kind_filter(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/api/v1/locations/nearby",
        params=[
            ("lat", 37.5665),
            ("lon", 126.9780),
            ("kind", "zero_waste_shop"),
            ("kind", "zero_waste_shop"),
            ("limit", 3),
        ],
    )
    assert response.status_code == 200
    places = response.json()["places"]
    assert [p["kind"] for p in places] == ["zero_waste_shop"] * 3
    assert len({p["id"] for p in places}) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lat": 51.5, "lon": 126.97}, "lat"),
        ({"lat": 37.56, "lon": 2.35}, "lon"),
        ({"lat": 37.56}, "lon"),
        ({"lat": "north", "lon": 126.97}, "lat"),
        ({"lat": 37.56, "lon": 126.97, "stream": "banana"}, "stream"),
        ({"lat": 37.56, "lon": 126.97, "radius": 1_000_000}, "radius"),
        ({"lat": 37.56, "lon": 126.97, "radius": -5}, "radius"),
        ({"lat": 37.56, "lon": 126.97, "limit": 10_000}, "limit"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    http: httpx.AsyncClient, params: dict[str, str | float], field: str
) -> None:
    response = await http.get("/api/v1/locations/nearby", params=params)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(e["loc"] == ["query", field] for e in errors), errors


async def test_unknown_kind_is_a_422_from_the_service(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/api/v1/locations/nearby", params={"lat": 37.56, "lon": 126.97, "kind": "volcano"}
    )
    assert response.status_code == 422
    assert "unknown kind" in response.json()["error"]["message"]


async def test_unknown_id_is_a_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/locations/keco:does-not-exist")
    assert response.status_code == 404
    assert "keco:does-not-exist" in response.json()["error"]["message"]
