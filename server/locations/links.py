"""Deep links that open walking directions to a place in Kakao Map, Naver Map and Google Maps.

Each follows its provider's documented URL scheme:

* Kakao Map web "route" link (apis.map.kakao.com, 지도 URL → 길찾기):
  ``https://map.kakao.com/link/to/<name>,<lat>,<lng>``. The three values are comma-separated in
  the path, so a comma inside the name would shift them; it is replaced by a space before the
  name is percent-encoded.
* Naver Map app URL scheme (NAVER Cloud "지도앱 연동 URL Scheme"), walking route:
  ``nmap://route/walk?dlat=..&dlng=..&dname=..&appname=..``. Naver documents no stable web
  route URL, only this scheme; without a start point the app starts from the current position.
  ``appname`` is mandatory and must be the calling app's bundle id / applicationId.
* Google Maps URLs (developers.google.com/maps/documentation/urls), directions action:
  ``https://www.google.com/maps/dir/?api=1&destination=<lat>,<lng>&travelmode=walking``, which
  opens the app when installed and the browser otherwise.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from protocol.messages import PlaceLinks

#: ``appname`` sent to Naver: the mobile app's bundle id.
DEFAULT_NAVER_APPNAME = "kr.wastecoach.app"


def _coord(value: float) -> str:
    # Seven decimals is about 1 cm; more digits only lengthen the URL.
    return f"{value:.7f}".rstrip("0").rstrip(".")


def kakao_route(name: str, lat: float, lon: float) -> str:
    label = " ".join(name.replace(",", " ").split()) or "destination"
    return f"https://map.kakao.com/link/to/{quote(label, safe='')},{_coord(lat)},{_coord(lon)}"


def naver_route(name: str, lat: float, lon: float, *, appname: str = DEFAULT_NAVER_APPNAME) -> str:
    query = urlencode(
        {"dlat": _coord(lat), "dlng": _coord(lon), "dname": name, "appname": appname},
        quote_via=quote,
    )
    return f"nmap://route/walk?{query}"


def google_route(lat: float, lon: float) -> str:
    query = urlencode(
        {"api": "1", "destination": f"{_coord(lat)},{_coord(lon)}", "travelmode": "walking"},
        quote_via=quote,
        safe=",",
    )
    return f"https://www.google.com/maps/dir/?{query}"


def route_links(
    name: str, lat: float, lon: float, *, naver_appname: str = DEFAULT_NAVER_APPNAME
) -> PlaceLinks:
    return PlaceLinks(
        kakao=kakao_route(name, lat, lon),
        naver=naver_route(name, lat, lon, appname=naver_appname),
        google=google_route(lat, lon),
    )
