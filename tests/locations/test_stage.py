"""The scan's locations stage, with and without the client's position."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from protocol.messages import Classification, GeoPoint, Locale, OfficialCategory
from protocol.streams import OFFICIAL_PATH, Stream
from server.contracts import ScanInput
from server.db import Database
from server.locations import service
from server.locations import stage as stage_module
from server.locations.geo import haversine_m
from server.locations.normalize import PointRecord
from server.locations.stage import LocationsStage
from server.locations.streams import catalog

CITY_HALL = GeoPoint(lat=37.5665, lon=126.9780)


def scan(location: GeoPoint | None, locale: Locale = Locale.KO) -> ScanInput:
    return ScanInput(
        scan_id="scan-1",
        request_id="req-1",
        session_id="s",
        user_id="u",
        locale=locale,
        image=b"",
        content_type="image/jpeg",
        location=location,
    )


def classified(stream: Stream) -> Classification:
    major, middle = OFFICIAL_PATH[stream]
    return Classification(
        label=stream.value,
        name_ko="품목",
        name_en="item",
        stream=stream,
        category=OfficialCategory(major=major, middle=middle),
        confidence=0.9,
        model="test",
    )


async def test_battery_at_city_hall(loaded_db: Database) -> None:
    event = await LocationsStage(loaded_db).suggest(scan(CITY_HALL), classified(Stream.BATTERY))
    assert (event.scan_id, event.request_id, event.stream) == ("scan-1", "req-1", Stream.BATTERY)
    assert event.location_used is True
    assert event.note is None
    assert len(event.places) == 5
    assert {p.kind for p in event.places} == {"lamp_battery_bin"}
    assert [p.distance_m for p in event.places] == sorted(p.distance_m for p in event.places)
    assert all(p.links.kakao.startswith("https://map.kakao.com/link/to/") for p in event.places)


@pytest.mark.parametrize("locale", [Locale.KO, Locale.EN])
async def test_without_location(sqlite_db: Database, locale: Locale) -> None:
    event = await LocationsStage(sqlite_db).suggest(scan(None, locale), classified(Stream.BATTERY))
    assert event.places == []
    assert event.location_used is False
    assert event.note == catalog().note("no_location", locale)


async def test_nothing_near_falls_back_to_the_nearest_recycling_centre(
    loaded_db: Database, snapshot_records: list[PointRecord]
) -> None:
    # The lamp and battery bins in the data are in other cities: the nearest to Gangneung is
    # about 30 km away, beyond the stage's 20 km.
    gangneung = GeoPoint(lat=37.7519, lon=128.8761)
    takes_batteries = [
        r
        for r in snapshot_records
        if r.kind in catalog().kinds_for(Stream.BATTERY) and Stream.BATTERY in r.accepts
    ]
    assert min(haversine_m(37.7519, 128.8761, r.lat, r.lon) for r in takes_batteries) > 20_000
    nearest_centre = min(
        (r for r in snapshot_records if r.kind == "recycling_center"),
        key=lambda r: haversine_m(37.7519, 128.8761, r.lat, r.lon),
    )

    event = await LocationsStage(loaded_db).suggest(
        scan(gangneung, Locale.EN), classified(Stream.BATTERY)
    )
    assert event.location_used is True
    assert event.note == catalog().note("nothing_near", Locale.EN)
    assert [p.id for p in event.places] == [nearest_centre.id]


async def test_stream_with_no_drop_off(sqlite_db: Database) -> None:
    event = await LocationsStage(sqlite_db).suggest(scan(CITY_HALL), classified(Stream.FOOD))
    assert event.places == []
    assert event.location_used is True
    assert event.note == catalog().note("household_only", Locale.KO)


async def test_position_abroad_is_not_an_error(sqlite_db: Database) -> None:
    tokyo = GeoPoint(lat=35.68, lon=139.76)
    event = await LocationsStage(sqlite_db).suggest(scan(tokyo), classified(Stream.BATTERY))
    assert event.places == []
    assert event.note == catalog().note("household_only", Locale.KO)


async def test_a_database_away_for_a_moment_is_waited_for(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = service.suggest
    failures = 3

    async def flaky(*args: Any, **kwargs: Any) -> service.Suggestion:
        nonlocal failures
        if failures:
            failures -= 1
            raise OperationalError("SELECT", {}, Exception("server closed the connection"))
        return await real(*args, **kwargs)

    monkeypatch.setattr(service, "suggest", flaky)
    event = await LocationsStage(sqlite_db).suggest(scan(CITY_HALL), classified(Stream.BATTERY))
    assert failures == 0
    assert event.location_used is True and len(event.places) == 5


async def test_a_database_that_stays_away_gives_no_places_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stage_module, "LOOKUP_PATIENCE_S", 0.5)
    with socket.socket() as s:  # a port nobody listens on: PostgreSQL is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = Database(f"postgresql+asyncpg://wc@127.0.0.1:{port}/wc")
    try:
        started = time.monotonic()
        event = await LocationsStage(down).suggest(
            scan(CITY_HALL, Locale.EN), classified(Stream.BATTERY)
        )
        assert time.monotonic() - started < 5
    finally:
        await down.dispose()
    assert event.places == [] and event.location_used is False
    assert event.note == catalog().note("unavailable", Locale.EN)


async def test_a_query_that_can_never_work_is_not_retried(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0

    async def broken(*args: Any, **kwargs: Any) -> service.Suggestion:
        nonlocal calls
        calls += 1
        raise ProgrammingError("SELECT", {}, Exception("no such column"))

    monkeypatch.setattr(service, "suggest", broken)
    with pytest.raises(ProgrammingError):
        await LocationsStage(sqlite_db).suggest(scan(CITY_HALL), classified(Stream.BATTERY))
    assert calls == 1
