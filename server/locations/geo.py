"""Great-circle distance, the one definition of "distance" the locations domain reports.

PostGIS orders geography by the same spherical distance (``<->`` and ``ST_Distance(..,
false)`` use a sphere of the mean Earth radius), so both database back ends sort and report
identically.
"""

from __future__ import annotations

import math

#: Mean Earth radius used by PostGIS for spherical geography computations.
EARTH_RADIUS_M = 6_371_008.7714


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bounding_box(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) that contains every point within ``radius_m``.

    Slightly generous on purpose: the exact check happens afterwards, and a box that is too
    small would silently drop true neighbours.
    """
    dlat = math.degrees(radius_m / EARTH_RADIUS_M) * 1.001
    cos_lat = max(math.cos(math.radians(lat) + math.radians(dlat) * math.copysign(1, lat)), 1e-6)
    dlon = min(180.0, dlat / cos_lat)
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon
