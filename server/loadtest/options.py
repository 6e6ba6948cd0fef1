"""The load test's own options, defined once for the launcher and for Locust's parser.

``wastecoach loadtest`` parses them to check its inputs before it starts anything; Locust
parses them again in each of its processes (the locustfile adds them to Locust's parser), and
its master hands their values to every worker with the start of a run, so a worker on another
machine needs none of them on its command line. Nothing here imports Locust.
"""

from __future__ import annotations

import argparse
from typing import Any

SCENARIOS = ("scan", "scan+chat", "live", "idle")
#: Scenarios whose users send photos (``--photos`` is required).
PHOTO_SCENARIOS = ("scan", "scan+chat", "live")


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def duration(text: str) -> float:
    """Seconds, or a number with ``s``, ``m`` or ``h`` (``90``, ``90s``, ``5m``, ``1h``)."""
    units = {"s": 1, "m": 60, "h": 3600}
    scale = 1
    if text and text[-1] in units:
        scale = units[text[-1]]
        text = text[:-1]
    try:
        value = float(text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30, 30s, 5m)") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("a duration must be above 0")
    return value


def add_scenario_arguments(parser: Any) -> None:
    """What the simulated users do and what the run reports. ``parser`` is an argparse
    parser (the launcher) or Locust's configargparse parser (which takes the same calls)."""
    group = parser.add_argument_group("Waste Coach load test")
    group.add_argument("--scenario", choices=SCENARIOS, default="scan",
                       help="what each user does: scan photos, scan then ask follow-up "
                            "questions, stream camera frames in live mode, or hold an idle "
                            "session with heartbeats (default scan)")
    group.add_argument("--photos", default="",
                       help="folder of JPEG, PNG or WebP photos the users scan (searched "
                            "recursively); required by scan, scan+chat and live")
    group.add_argument("--upload", action="store_true", default=False,
                       help="send each photo through the upload path (POST /api/v1/uploads "
                            "and a PUT) instead of inline in scan.start")
    group.add_argument("--duration", type=duration, default=None,
                       help="stop after this long (seconds, or 30s, 5m, 1h); default 60 s, "
                            "or 10 min with --scans")
    group.add_argument("--scans", type=positive_int, default=None,
                       help="stop once this many scans have finished (all users together; "
                            "scans under way then get 15 s to finish)")
    group.add_argument("--out", default="",
                       help="folder for the report (report.json, PNG plots); default a "
                            "timestamped folder under ./loadtest-reports/")
    group.add_argument("--metrics-url", default="",
                       help="the server's Prometheus endpoint (e.g. http://host:8000/metrics): "
                            "scraped during the run for memory per session and CPU")
    group.add_argument("--metrics-interval", type=positive_float, default=5.0,
                       help="seconds between two scrapes of --metrics-url (default 5)")
    group.add_argument("--tokens", default="",
                       help="file of access tokens, one a line, shared out to the users in "
                            "turn; without it every user signs in as a new guest")
    group.add_argument("--locale", choices=("ko", "en"), default="ko")
    group.add_argument("--lat", type=float, default=37.5665,
                       help="latitude sent with scans, for nearby places (default Seoul)")
    group.add_argument("--lon", type=float, default=126.978)
    group.add_argument("--think", type=non_negative_float, nargs=2, default=[1.0, 3.0],
                       metavar=("MIN", "MAX"),
                       help="seconds a user waits between two scans (default 1 3)")
    group.add_argument("--chat-questions", type=positive_int, default=2,
                       help="follow-up questions after each scan in scan+chat (default 2)")
    group.add_argument("--live-seconds", type=positive_float, default=5.0,
                       help="how long a user holds one item before the camera (default 5)")
    group.add_argument("--live-fps", type=positive_float, default=4.0,
                       help="camera frames a second in live mode (default 4)")
    group.add_argument("--timeout", type=positive_float, default=10.0,
                       help="seconds any one network step may take: connect, sign-in, "
                            "session.ready, an upload (default 10)")
    group.add_argument("--scan-timeout", type=positive_float, default=60.0,
                       help="seconds from scan.start to scan.done before the scan counts as "
                            "timed out (default 60)")
    group.add_argument("--reconnect-attempts", type=positive_int, default=5,
                       help="reconnects (with backoff) after the server closes a connection, "
                            "before the run stops as failed (default 5)")
