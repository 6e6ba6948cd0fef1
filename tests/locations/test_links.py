"""Route links follow each provider's documented URL scheme and survive awkward names."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from server.locations.links import google_route, kakao_route, naver_route, route_links

NAME = "서울시청 본관, 1층 & 민원실 #2"


def test_kakao_route() -> None:
    url = kakao_route(NAME, 37.5665, 126.978)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "map.kakao.com")
    assert parts.path.startswith("/link/to/")
    raw = parts.path.removeprefix("/link/to/")
    assert "&" not in raw and "#" not in raw and " " not in raw
    # The comma in the name must not become a fourth field.
    assert unquote(raw).split(",") == ["서울시청 본관 1층 & 민원실 #2", "37.5665", "126.978"]


def test_naver_route() -> None:
    parts = urlsplit(naver_route(NAME, 37.5665, 126.978, appname="kr.example.app"))
    assert (parts.scheme, parts.netloc, parts.path) == ("nmap", "route", "/walk")
    assert parse_qs(parts.query) == {
        "dlat": ["37.5665"],
        "dlng": ["126.978"],
        "dname": [NAME],
        "appname": ["kr.example.app"],
    }


def test_google_route() -> None:
    parts = urlsplit(google_route(37.5665, 126.978))
    assert (parts.netloc, parts.path) == ("www.google.com", "/maps/dir/")
    assert parse_qs(parts.query) == {
        "api": ["1"],
        "destination": ["37.5665,126.978"],
        "travelmode": ["walking"],
    }


def test_route_links_bundle() -> None:
    links = route_links("약국", 35.1, 129.04)
    assert links.google.endswith("destination=35.1,129.04&travelmode=walking")
    assert "dname=%EC%95%BD%EA%B5%AD" in links.naver
