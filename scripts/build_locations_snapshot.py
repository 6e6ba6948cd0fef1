"""Build the packaged collection-point snapshot from the raw public files.

    .venv/bin/python scripts/build_locations_snapshot.py [--source ../shared/data/locations]

Reads the raw files, normalises, validates and de-duplicates them with the same code the
importer uses (server.locations.normalize), writes server/locations/data/points.jsonl.gz and
prints what was kept, merged and rejected. The output is reproducible: rerunning it on the same
inputs leaves the file byte-for-byte identical. Run it when the shared data changes and commit
the snapshot; a fresh install then loads it with ``wastecoach locations import``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.locations.normalize import (  # noqa: E402  (needs the repo on sys.path first)
    normalise_dir,
    packaged_snapshot,
    write_snapshot,
)
from server.locations.report import format_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO.parent / "shared" / "data" / "locations",
        help="directory with the raw files (default: ../shared/data/locations)",
    )
    parser.add_argument("--out", type=Path, default=packaged_snapshot())
    args = parser.parse_args(argv)
    records, report = normalise_dir(args.source)
    write_snapshot(args.out, records, report)
    print(format_report(report))
    print(f"wrote {len(records)} points to {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
