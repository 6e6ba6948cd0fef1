"""REST routes of the map screen: nearby collection points and one point's details.

Routes validate their input and call one service function; the service raises
:class:`server.locations.errors.LocationsError`, which ``server.app`` maps to a status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from protocol.messages import Place
from protocol.streams import Stream
from server.db import Database
from server.locations import service
from server.locations.normalize import KOREA_LAT, KOREA_LON
from server.rest import error_responses

router = APIRouter(
    prefix="/api/v1/locations", tags=["locations"], responses=error_responses(404, 422, 503)
)


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session on the app's database (``app.state.db``), committed when the request ends."""
    db: Database = request.app.state.db
    async with db.session() as session:
        yield session


Session = Annotated[AsyncSession, Depends(db_session)]
Lat = Annotated[
    float,
    Query(
        ge=KOREA_LAT[0],
        le=KOREA_LAT[1],
        description="WGS84 latitude; the service covers South Korea (33 to 39).",
    ),
]
Lon = Annotated[
    float,
    Query(
        ge=KOREA_LON[0],
        le=KOREA_LON[1],
        description="WGS84 longitude; the service covers South Korea (124 to 132).",
    ),
]


class NearbyResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: float
    lon: float
    stream: Stream | None
    radius_m: float
    places: list[Place]


class PointResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    place: Place
    source: str
    merged_sources: list[str]
    extra: dict[str, Any]


@router.get("/nearby", response_model=NearbyResponse)
async def nearby(
    session: Session,
    lat: Lat,
    lon: Lon,
    stream: Annotated[
        Stream | None, Query(description="Only places that take this disposal stream.")
    ] = None,
    kind: Annotated[
        list[str] | None,
        Query(description="Only these kinds of place (repeatable), e.g. zero_waste_shop."),
    ] = None,
    radius: Annotated[
        float,
        Query(gt=0, le=service.MAX_RADIUS_M, description="Search radius in metres."),
    ] = service.DEFAULT_RADIUS_M,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIMIT)] = service.DEFAULT_LIMIT,
) -> NearbyResponse:
    """Places within ``radius`` metres, nearest first, with route links for the map apps."""
    places = await service.nearby(
        session, lat=lat, lon=lon, stream=stream, kinds=kind, radius_m=radius, limit=limit
    )
    return NearbyResponse(lat=lat, lon=lon, stream=stream, radius_m=radius, places=places)


@router.get("/{point_id}", response_model=PointResponse)
async def point(
    session: Session,
    point_id: Annotated[str, Path(min_length=1, max_length=96)],
    lat: Annotated[float | None, Query(ge=KOREA_LAT[0], le=KOREA_LAT[1])] = None,
    lon: Annotated[float | None, Query(ge=KOREA_LON[0], le=KOREA_LON[1])] = None,
) -> PointResponse:
    """One place with what its sources say; ``distance_m`` is from (lat, lon) when given."""
    detail = await service.get(session, point_id, lat=lat, lon=lon)
    return PointResponse(
        place=detail.place,
        source=detail.source,
        merged_sources=detail.merged_sources,
        extra=detail.extra,
    )
