"""The server's own figures during a load test, from its Prometheus endpoint (``/metrics``).

The load test scrapes ``--metrics-url`` every few seconds and keeps, per scrape, the server
process's resident memory (``process_resident_memory_bytes``), its open WebSocket sessions
(``wastecoach_ws_sessions_open``) and the CPU time it has used (``process_cpu_seconds_total``).
From those the report derives memory per open session (the growth of memory over the growth of
sessions) and the cores the server kept busy. The text is parsed with prometheus_client's own
parser, not by hand. Nothing here imports Locust.
"""

from __future__ import annotations

import itertools
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

RSS = "process_resident_memory_bytes"
SESSIONS = "wastecoach_ws_sessions_open"
CPU = "process_cpu_seconds_total"
#: Largest /metrics body read (a server's exposition is some tens of KiB).
MAX_BYTES = 4 * 1024 * 1024


class ScrapeError(Exception):
    """The endpoint could not be read or is not Prometheus text."""


@dataclass(frozen=True)
class Sample:
    t: float  #: wall-clock time of the scrape
    rss_bytes: float | None
    sessions_open: float | None
    cpu_seconds: float | None


def parse(text: str, t: float) -> Sample:
    """One sample from an exposition in Prometheus text format. A metric the text lacks is
    None (``wastecoach_ws_sessions_open`` on a server without it, for example)."""
    values: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in (RSS, SESSIONS, CPU):
                    # Several processes behind one endpoint (a multiprocess collector) add up.
                    values[sample.name] = values.get(sample.name, 0.0) + sample.value
    except (ValueError, TypeError, IndexError) as exc:
        raise ScrapeError(f"not Prometheus text: {exc}") from exc
    return Sample(t, values.get(RSS), values.get(SESSIONS), values.get(CPU))


def scrape(url: str, timeout_s: float) -> Sample:
    t = time.time()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            body = resp.read(MAX_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ScrapeError(f"{url}: {exc}") from exc
    if len(body) > MAX_BYTES:
        raise ScrapeError(f"{url}: more than {MAX_BYTES} bytes")
    return parse(body.decode("utf-8", "replace"), t)


def summarise(samples: list[Sample], failures: dict[str, int]) -> dict[str, Any]:
    """Memory per session and CPU over the run, from its samples (first to last)."""
    out: dict[str, Any] = {
        "samples": [asdict(s) for s in samples],
        "scrapes_failed": sum(failures.values()),
        "scrape_errors": dict(failures),
    }
    with_rss = [s for s in samples if s.rss_bytes is not None]
    with_sessions = [s for s in with_rss if s.sessions_open is not None]
    if with_rss:
        out["rss_bytes_first"] = with_rss[0].rss_bytes
        out["rss_bytes_max"] = max(s.rss_bytes or 0.0 for s in with_rss)
    if with_sessions:
        base = with_sessions[0]
        peak = max(with_sessions, key=lambda s: s.sessions_open or 0.0)
        out["sessions_open_max"] = peak.sessions_open
        grown = (peak.sessions_open or 0.0) - (base.sessions_open or 0.0)
        if grown >= 1:
            # The growth of memory from the first scrape to the one with the most sessions,
            # over the sessions opened in between: what one more session costs.
            grew = (peak.rss_bytes or 0.0) - (base.rss_bytes or 0.0)
            out["rss_bytes_per_session"] = grew / grown
            out["rss_per_session_between"] = [base.sessions_open, peak.sessions_open]
    with_cpu = [s for s in samples if s.cpu_seconds is not None]
    if len(with_cpu) >= 2:
        first, last = with_cpu[0], with_cpu[-1]
        used = (last.cpu_seconds or 0.0) - (first.cpu_seconds or 0.0)
        out["cpu_seconds"] = used
        span = last.t - first.t
        if span > 0:
            out["cpu_cores_mean"] = used / span
        busiest = 0.0
        for a, b in itertools.pairwise(with_cpu):
            if b.t > a.t:
                rate = ((b.cpu_seconds or 0.0) - (a.cpu_seconds or 0.0)) / (b.t - a.t)
                busiest = max(busiest, rate)
        out["cpu_cores_max"] = busiest
    return out
