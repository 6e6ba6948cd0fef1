"""Nearest search on SQLite and on PostgreSQL/PostGIS over the whole packaged data set.

Each answer is checked against a brute-force scan of the snapshot in Python: same places, same
order, same distances.
"""

from __future__ import annotations

import random
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from protocol.streams import Stream
from server.db import Database
from server.locations import service
from server.locations.errors import InvalidSearch
from server.locations.geo import haversine_m
from server.locations.normalize import PointRecord
from server.locations.streams import catalog

CITY_HALL = (37.5665, 126.9780)


def brute_force(
    records: list[PointRecord],
    lat: float,
    lon: float,
    stream: Stream | None,
    radius_m: float,
    limit: int,
) -> list[tuple[str, float]]:
    kinds = set(catalog().kinds_for(stream)) if stream is not None else None
    found = []
    for r in records:
        if kinds is not None and (r.kind not in kinds or stream not in r.accepts):
            continue
        d = haversine_m(lat, lon, r.lat, r.lon)
        if d <= radius_m:
            found.append((r.id, d))
    found.sort(key=lambda x: (x[1], x[0]))
    return found[:limit]


async def test_battery_nearest_five_at_city_hall(loaded_db: Database) -> None:
    async with loaded_db.session() as session:
        places = await service.nearby(
            session, lat=CITY_HALL[0], lon=CITY_HALL[1], stream=Stream.BATTERY, limit=5
        )
    assert len(places) == 5
    assert all(p.kind == "lamp_battery_bin" for p in places)
    assert all(Stream.BATTERY in p.accepts for p in places)
    distances = [p.distance_m for p in places]
    assert distances == sorted(distances)
    for p in places:
        assert p.distance_m == pytest.approx(haversine_m(*CITY_HALL, p.lat, p.lon), abs=0.1)
        kakao = urlsplit(p.links.kakao)
        name, lat, lon = unquote(kakao.path.removeprefix("/link/to/")).rsplit(",", 2)
        assert (float(lat), float(lon)) == pytest.approx((p.lat, p.lon))
        assert name == p.name.replace(",", " ")
        naver = parse_qs(urlsplit(p.links.naver).query)
        assert naver["dname"] == [p.name]
        google = parse_qs(urlsplit(p.links.google).query)
        assert google["destination"] == [
            f"{p.lat:.7f}".rstrip("0") + "," + f"{p.lon:.7f}".rstrip("0")
        ]


async def test_a_lamp_goes_to_the_same_lamp_and_battery_bins(loaded_db: Database) -> None:
    """A tube or bulb the user named in the clarify question (the classifier has no lamp class)
    is sent to the lamp and battery bins, not told to bag it."""
    async with loaded_db.session() as session:
        places = await service.nearby(
            session, lat=CITY_HALL[0], lon=CITY_HALL[1], stream=Stream.LAMP, limit=5
        )
    assert len(places) == 5
    assert all(p.kind == "lamp_battery_bin" and Stream.LAMP in p.accepts for p in places)


@pytest.mark.parametrize(
    "stream",
    [
        Stream.BATTERY,
        Stream.CLOTHING,
        Stream.MEDICINE,
        Stream.PLASTIC,
        Stream.CLEAR_PET,
        Stream.ELECTRONICS,
        None,
    ],
)
async def test_matches_brute_force(
    loaded_db: Database, snapshot_records: list[PointRecord], stream: Stream | None
) -> None:
    rng = random.Random(f"{stream}")
    # Mostly where the data is (sampled from it), plus uniform points over the country.
    origins = [
        (r.lat + rng.uniform(-0.02, 0.02), r.lon + rng.uniform(-0.02, 0.02))
        for r in rng.sample(snapshot_records, 12)
    ]
    origins += [(rng.uniform(34.0, 38.0), rng.uniform(126.0, 129.5)) for _ in range(6)]
    async with loaded_db.session() as session:
        for lat, lon in origins:
            radius = rng.choice([300.0, 2_000.0, 20_000.0])
            limit = rng.choice([1, 5, 20])
            places = await service.nearby(
                session, lat=lat, lon=lon, stream=stream, radius_m=radius, limit=limit
            )
            expected = brute_force(snapshot_records, lat, lon, stream, radius, limit)
            assert [p.distance_m for p in places] == pytest.approx(
                [d for _, d in expected], abs=0.2
            ), (lat, lon, radius)
            # Many bins share one geocoded spot. Which of several equally distant points make
            # the cut at ``limit`` is left to the index; every point strictly nearer than the
            # last one must be there, in (distance, id) order.
            if expected:
                last = expected[-1][1]
                assert [p.id for p in places if p.distance_m < last - 0.2] == [
                    i for i, d in expected if d < last - 0.2
                ]


async def test_kind_filter_and_limit(loaded_db: Database) -> None:
    async with loaded_db.session() as session:
        shops = await service.nearby(
            session, lat=CITY_HALL[0], lon=CITY_HALL[1], kinds=["zero_waste_shop"], limit=50
        )
    assert len(shops) == 50
    assert {p.kind for p in shops} == {"zero_waste_shop"}
    assert max(p.distance_m for p in shops) <= service.DEFAULT_RADIUS_M


async def test_nothing_in_an_empty_radius(loaded_db: Database) -> None:
    # The middle of the Yellow Sea, still inside the service box.
    async with loaded_db.session() as session:
        assert await service.nearby(session, lat=36.0, lon=124.5, radius_m=20_000) == []


async def test_stream_without_places(loaded_db: Database) -> None:
    async with loaded_db.session() as session:
        places = await service.nearby(
            session, lat=CITY_HALL[0], lon=CITY_HALL[1], stream=Stream.FOOD
        )
    assert places == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lat": 35.6, "lon": 139.7}, "outside the service area"),
        ({"lat": 37.5, "lon": 127.0, "radius_m": 20_001.0}, "radius"),
        ({"lat": 37.5, "lon": 127.0, "radius_m": 0.0}, "radius"),
        ({"lat": 37.5, "lon": 127.0, "limit": 0}, "limit"),
        ({"lat": 37.5, "lon": 127.0, "limit": 51}, "limit"),
        ({"lat": 37.5, "lon": 127.0, "kinds": ["volcano"]}, "unknown kind"),
    ],
)
async def test_bad_queries_raise_domain_errors(
    sqlite_db: Database, kwargs: dict[str, object], message: str
) -> None:
    async with sqlite_db.session() as session:
        with pytest.raises(InvalidSearch, match=message) as info:
            await service.nearby(session, **kwargs)  # type: ignore[arg-type]
    assert info.value.status == 422


async def test_get_one_point(loaded_db: Database, snapshot_records: list[PointRecord]) -> None:
    record = next(r for r in snapshot_records if r.kind == "recycling_center" and r.hours)
    async with loaded_db.session() as session:
        detail = await service.get(session, record.id, lat=CITY_HALL[0], lon=CITY_HALL[1])
    assert detail.place.name == record.name
    assert detail.place.hours == record.hours
    assert detail.place.distance_m == pytest.approx(
        haversine_m(*CITY_HALL, record.lat, record.lon), abs=0.1
    )
    assert detail.source == "mois_recycle_center"
