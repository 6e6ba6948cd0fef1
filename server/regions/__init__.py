"""Regions: which 시군구 a location lies in (``server.regions.districts``)."""
