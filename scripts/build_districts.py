"""Build the shipped 시군구 boundaries from the public GeoJSON, and measure what simplifying cost.

    .venv/bin/python scripts/build_districts.py [--tolerance 0.001]
        [--source ../shared/data/regions/sigungu_2022.geojson]

Reads the 250 district polygons (vuski/admdongkor, 2022-03), repairs the two that are not
valid polygons, simplifies them as a coverage (shared edges stay shared, so simplifying opens
no gaps and no overlaps between neighbours), quantises the coordinates to 1e-5 degrees and
writes server/regions/data/sigungu.json.gz (delta-encoded integers, gzip) and
sigungu.manifest.json (its SHA-256, the source, the credit, the tolerance and the measurement).

The measurement: every point is placed with the full-precision polygons and with the shipped
ones, and the points that change district are counted, for the real collection points of
server/locations/data/points.jsonl.gz (where people are) and for random points within a few
hundred metres of a boundary (the hard case). The script refuses to write a file that moves
more than ``--max-real-changes`` of the real points. Output is reproducible byte for byte.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import shapely

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.regions.districts import (  # noqa: E402  (needs the repo on sys.path first)
    ATTRIBUTION,
    BOUNDARIES_FILE,
    DATA_DIR,
    FORMAT,
    MANIFEST_FILE,
    QUANTUM_DEG,
    DistrictIndex,
    decode_rings,
    encode_rings,
    from_source,
    load,
    sha256_hex,
)

SOURCE = REPO.parent / "shared" / "data" / "regions" / "sigungu_2022.geojson"
POINTS = REPO / "server" / "locations" / "data" / "points.jsonl.gz"
#: Points of the boundary sample, and how far from a boundary they scatter (degrees, 1 sigma).
BOUNDARY_SAMPLE = 20_000
BOUNDARY_SPREAD_DEG = 0.003


def _polygonal(geometry: Any) -> Any:
    """A valid polygon or multipolygon of ``geometry`` (make_valid may add stray lines)."""
    fixed = shapely.make_valid(geometry)
    if fixed.geom_type in ("Polygon", "MultiPolygon"):
        return fixed
    parts = [g for g in fixed.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts)


def read_source(path: Path) -> tuple[list[dict[str, str]], np.ndarray]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    features = sorted(doc["features"], key=lambda f: f["properties"]["sgg"])
    props = [
        {
            "sgg": f["properties"]["sgg"],
            "sido": f["properties"]["SIDONM"],
            "name": f["properties"]["SGGNM"],
        }
        for f in features
    ]
    geometries = np.array([_polygonal(shapely.geometry.shape(f["geometry"])) for f in features])
    return props, geometries


def real_points() -> np.ndarray:
    out = []
    with gzip.open(POINTS, "rt", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if "lat" in record and "lon" in record:
                out.append((record["lat"], record["lon"]))
    return np.asarray(out)


def boundary_points(geometries: np.ndarray, seed: int = 2022) -> np.ndarray:
    """Random points scattered around the district boundaries, (lat, lon)."""
    rng = np.random.default_rng(seed)
    boundaries = shapely.boundary(geometries)
    lengths = shapely.length(boundaries)
    picks = rng.choice(len(boundaries), BOUNDARY_SAMPLE, p=lengths / lengths.sum())
    at = shapely.line_interpolate_point(
        boundaries[picks], rng.uniform(0, 1, BOUNDARY_SAMPLE), normalized=True
    )
    jitter = rng.normal(0, BOUNDARY_SPREAD_DEG, (BOUNDARY_SAMPLE, 2))
    return np.c_[shapely.get_y(at) + jitter[:, 0], shapely.get_x(at) + jitter[:, 1]]


def changed(full: DistrictIndex, shipped: DistrictIndex, points: np.ndarray) -> int:
    def code(index: DistrictIndex, lat: float, lon: float) -> str | None:
        district = index.lookup(lat, lon)
        return None if district is None else district.code

    return sum(code(full, lat, lon) != code(shipped, lat, lon) for lat, lon in points)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.001,
        help="coverage simplification tolerance, degrees (default 0.001)",
    )
    parser.add_argument("--max-real-changes", type=int, default=5)
    args = parser.parse_args(argv)

    props, geometries = read_source(args.source)
    simplified = (
        shapely.coverage_simplify(geometries, args.tolerance) if args.tolerance else geometries
    )
    records = [
        {**p, "rings": encode_rings(geometry)}
        for p, geometry in zip(props, simplified, strict=True)
    ]
    doc = {"format": FORMAT, "credit": ATTRIBUTION, "districts": records}
    payload = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    data = gzip.compress(payload, compresslevel=9, mtime=0)

    full = DistrictIndex(
        [from_source(p["sgg"], p["sido"], p["name"]) for p in props], list(geometries)
    )
    shipped_polygons = [decode_rings(r["rings"]) for r in records]
    shipped = DistrictIndex(
        [from_source(p["sgg"], p["sido"], p["name"]) for p in props], shipped_polygons
    )
    real = real_points()
    near = boundary_points(geometries)
    real_changed = changed(full, shipped, real)
    near_changed = changed(full, shipped, near)
    before = int(shapely.get_num_coordinates(geometries).sum())
    after = int(sum(shapely.get_num_coordinates(np.array(shipped_polygons))))
    print(f"districts: {len(records)}; vertices {before} -> {after} (tolerance {args.tolerance})")
    print(f"file: {len(data) / 1024:.0f} KiB ({args.source.stat().st_size / 1024:.0f} KiB source)")
    print(f"real collection points that change district: {real_changed} of {len(real)}")
    print(
        f"points within ~{BOUNDARY_SPREAD_DEG * 111_000:.0f} m of a boundary that change "
        f"district: {near_changed} of {len(near)}"
    )
    if real_changed > args.max_real_changes:
        print(f"refusing to write: more than {args.max_real_changes} real points moved")
        return 1

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / BOUNDARIES_FILE).write_bytes(data)
    manifest = {
        "file": BOUNDARIES_FILE,
        "sha256": sha256_hex(data),
        "count": len(records),
        "format": FORMAT,
        "source": "vuski/admdongkor, sigungu boundaries of 2022-03 (sgg_ver20220309)",
        "credit": ATTRIBUTION,
        "codes": "2022 행정안전부 codes; 강원 42 and 전북 45 are now 51 and 52 (mapped at load)",
        "simplification": {
            "method": "shapely.coverage_simplify",
            "tolerance_deg": args.tolerance,
            "quantum_deg": QUANTUM_DEG,
            "vertices_before": before,
            "vertices_after": after,
            "real_points_changed": [real_changed, len(real)],
            "boundary_points_changed": [near_changed, len(near)],
        },
    }
    (args.out / MANIFEST_FILE).write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    load(args.out)  # what was written loads, checksum and all
    print(f"wrote {args.out / BOUNDARIES_FILE} and {MANIFEST_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
