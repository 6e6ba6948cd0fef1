"""What a load test measures, recorded exactly, and merged across Locust's processes.

Each simulated user records its latencies here (in HDR histograms: exact to three significant
digits from a microsecond to an hour, where Locust's own statistics round to two) and counts what
happened (scans by status, errors by code, close codes, resumes). A Locust worker ships what it
recorded since its last report to the master as one message (:meth:`Figures.export`, encoded
histograms and plain counts), and the master adds it to its own (:meth:`Figures.absorb`): the
master's figures are then exactly those of one process that ran every user. A timeline of
per-second histograms and counts feeds the report's "over time" plot.

This module does not import Locust, so the report and the tests can use it in any process.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

#: The latencies a test records: name → what it measures. Every one is reported with its
#: p50/p95/p99/max; the names are also the ``request_type`` of Locust's statistics.
FIGURES: dict[str, str] = {
    "sign_in": "POST /api/v1/auth/guest to its answer",
    "upload": "POST /api/v1/uploads and the PUT of the photo",
    "connect": "opening the WebSocket to session.ready",
    "accepted": "scan.start sent to scan.accepted",
    "classified": "scan.start sent (live: live.scan received) to scan.classified",
    "first_token": "scan.start sent to the first coaching.delta",
    "token_gap": "between two coaching.delta events of one scan",
    "bins": "scan.start sent to bins.suggested",
    "end_to_end": "scan.start sent to scan.done",
    "chat_first_token": "chat.message sent to the first chat.delta",
    "chat_done": "chat.message sent to chat.done",
    "live_hint": "a camera frame sent to its live.hint",
    "pong": "ping sent to its pong (heartbeat round trip)",
    "resume": "reconnecting to session.ready of the resumed session",
}
#: Figures with a line in the report's "over time" plot, per second.
TIMELINE_FIGURES = ("classified", "end_to_end")
PERCENTILES = (50.0, 95.0, 99.0)

# Microseconds, from 1 µs to one hour, three significant digits (0.1% error at any value).
_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000
_DIGITS = 3
# The per-second histograms of the timeline: milliseconds with two significant digits are
# plenty for a line on a plot, and keep an hour of seconds small.
_TIMELINE_HIGHEST_MS = 3_600_000
_TIMELINE_DIGITS = 2


def new_histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)


def _timeline_histogram() -> HdrHistogram:
    return HdrHistogram(1, _TIMELINE_HIGHEST_MS, _TIMELINE_DIGITS)


def _record(histogram: HdrHistogram, value: int, highest: int) -> None:
    # A value beyond the range would be dropped silently by record_value; it is clamped to
    # the range instead (an hour is no latency a scan can have and still count).
    histogram.record_value(min(max(value, 1), highest))


@dataclass
class Second:
    """What happened in one wall-clock second of the run."""

    counts: Counter[str]
    histograms: dict[str, HdrHistogram]


class Figures:
    """The latencies and counts of one process's users (or, on the master, of all of them)."""

    def __init__(self) -> None:
        self.histograms: dict[str, HdrHistogram] = {}
        #: ``"errors"`` → {code: n}, ``"closes"`` → {code: n}, ``"scans"`` → {status: n}, ...
        self.counts: dict[str, Counter[str]] = {}
        self.timeline: dict[int, Second] = {}
        #: What stopped the run or made it fail as a whole (unreachable host, refused sign-in).
        self.fatal: list[str] = []
        # What has not been exported yet (a worker sends only what is new).
        self._pending_hist: dict[str, HdrHistogram] = {}
        self._pending_counts: dict[str, Counter[str]] = {}
        self._pending_seconds: dict[int, Second] = {}
        self._pending_fatal: list[str] = []

    # ----------------------------------------------------------------------- recording

    def record(self, figure: str, ms: float, *, at: float | None = None) -> None:
        """Record one latency of ``figure`` (milliseconds), ``at`` a wall-clock time."""
        if figure not in FIGURES:
            raise ValueError(f"unknown figure {figure!r}")
        us = round(ms * 1000)
        for store in (self.histograms, self._pending_hist):
            hist = store.get(figure)
            if hist is None:
                hist = store[figure] = new_histogram()
            _record(hist, us, _HIGHEST_US)
        if figure in TIMELINE_FIGURES:
            for seconds in (self.timeline, self._pending_seconds):
                second = self._second(seconds, at)
                hist = second.histograms.get(figure)
                if hist is None:
                    hist = second.histograms[figure] = _timeline_histogram()
                _record(hist, round(ms), _TIMELINE_HIGHEST_MS)

    def count(self, kind: str, key: str = "", n: int = 1, *, at: float | None = None) -> None:
        """Count ``n`` of ``kind`` (``key`` splits it: an error code, a close code, ...)."""
        for store in (self.counts, self._pending_counts):
            store.setdefault(kind, Counter())[key] += n
        if not key:
            for seconds in (self.timeline, self._pending_seconds):
                self._second(seconds, at).counts[kind] += n

    def fail(self, reason: str) -> None:
        """Something that makes the whole run fail (it is reported and the exit code says so)."""
        if reason not in self.fatal:
            self.fatal.append(reason)
            self._pending_fatal.append(reason)

    @staticmethod
    def _second(seconds: dict[int, Second], at: float | None) -> Second:
        key = int(time.time() if at is None else at)
        second = seconds.get(key)
        if second is None:
            second = seconds[key] = Second(Counter(), {})
        return second

    # ----------------------------------------------------------------------- merging

    def export(self) -> dict[str, Any]:
        """What was recorded since the last export, as plain data (msgpack-able) for the
        master; the pending state is cleared."""
        payload = {
            "histograms": {k: h.encode() for k, h in self._pending_hist.items()},
            "counts": {k: dict(c) for k, c in self._pending_counts.items()},
            "timeline": {
                str(sec): {
                    "counts": dict(s.counts),
                    "histograms": {k: h.encode() for k, h in s.histograms.items()},
                }
                for sec, s in self._pending_seconds.items()
            },
            "fatal": list(self._pending_fatal),
        }
        self._pending_hist = {}
        self._pending_counts = {}
        self._pending_seconds = {}
        self._pending_fatal = []
        return payload

    def absorb(self, payload: dict[str, Any]) -> None:
        """Add what another process exported. Raises ``ValueError`` on a payload that is not
        an export (a worker of another version, a corrupted message)."""
        try:
            for figure, encoded in payload["histograms"].items():
                if figure not in FIGURES:
                    raise ValueError(f"unknown figure {figure!r}")
                hist = self.histograms.get(figure)
                if hist is None:
                    hist = self.histograms[figure] = new_histogram()
                hist.decode_and_add(encoded)
            for kind, counts in payload["counts"].items():
                self.counts.setdefault(kind, Counter()).update(
                    {str(k): int(v) for k, v in counts.items()}
                )
            for sec, data in payload["timeline"].items():
                second = self._second(self.timeline, int(sec))
                second.counts.update({str(k): int(v) for k, v in data["counts"].items()})
                for figure, encoded in data["histograms"].items():
                    hist = second.histograms.get(figure)
                    if hist is None:
                        hist = second.histograms[figure] = _timeline_histogram()
                    hist.decode_and_add(encoded)
            for reason in payload["fatal"]:
                if reason not in self.fatal:
                    self.fatal.append(str(reason))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a figures export: {exc!r}") from exc

    # ----------------------------------------------------------------------- reading

    def total(self, kind: str, key: str | None = None) -> int:
        counts = self.counts.get(kind, Counter())
        return counts[key] if key is not None else sum(counts.values())

    def summary(self, figure: str) -> dict[str, float] | None:
        """count, p50, p95, p99, max and mean of ``figure`` in milliseconds; None if none."""
        hist = self.histograms.get(figure)
        if hist is None or hist.get_total_count() == 0:
            return None
        out: dict[str, float] = {"count": float(hist.get_total_count())}
        for q in PERCENTILES:
            out[f"p{q:g}"] = hist.get_value_at_percentile(q) / 1000
        out["max"] = hist.get_max_value() / 1000
        out["mean"] = hist.get_mean_value() / 1000
        return out
