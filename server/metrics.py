"""This process's Prometheus metrics: what the API process serves at ``GET /metrics`` and a
worker on its own port (``WASTECOACH_METRICS_PORT``). ``docs/operations.md`` lists each one,
what it means and the alerts built on it.

The names were agreed with the load-test harness and the Grafana dashboards; renaming one breaks
both. Every label takes its values from a closed set (protocol event types, error codes, close
codes, scan statuses, stage names): anything else is counted as ``other``, so a client cannot
create series by sending odd values. No label ever carries a user, session or request id.

One process, one registry: the API process is a single uvicorn process and a worker is a single
process whose tasks run on one event loop (``workers.pool``), so prometheus_client's default
registry counts correctly without its multiprocess mode. Several workers on one host are several
processes, each with its own port.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from protocol.messages import SERVER_EVENTS, ErrorCode, ScanStatus
from protocol.session import CloseCode

log = logging.getLogger(__name__)

OTHER: Final = "other"

#: Every event type the server sends (the ``type`` literal of each protocol event).
EVENT_TYPES: Final = frozenset(
    str(model.model_fields["type"].default) for model in SERVER_EVENTS
)
_ERROR_CODES: Final = frozenset(code.value for code in ErrorCode)
#: Close codes as labels: ours, plus the standard ones a client or the transport produce
#: (1000 normal, 1001 going away, 1005 no code given, 1006 dropped without a close frame).
_CLOSE_CODES: Final = frozenset({1000, 1001, 1005, 1006} | {int(code) for code in CloseCode})
#: Where the stage label comes from: the agreed names, not ``protocol.Stage``'s timing keys.
STAGES: Final = ("vision", "clarify", "coach", "locations", "chat")

# Latency buckets from 5 ms to 30 s: the target for scan.classified is a p99 under 300 ms, so
# the buckets are dense around it; stages (an LLM answer, a clarify wait) run to tens of seconds.
_LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75,
    1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0,
)

WS_SESSIONS_OPEN = Gauge(
    "wastecoach_ws_sessions_open", "WebSocket sessions open in this process."
)
WS_EVENTS_SENT = Counter(
    "wastecoach_ws_events_sent", "Events sent to clients, by event type.", ["type"]
)
# The queue holds session.send_queue_size items (256 by default); a client is closed with 1013
# when it fills, so the top buckets are the ones that matter.
WS_SEND_QUEUE_DEPTH = Histogram(
    "wastecoach_ws_send_queue_depth",
    "Depth of a connection's send queue, observed at each enqueue.",
    buckets=(0, 1, 2, 4, 8, 16, 32, 64, 128, 192, 256, 512, 1024),
)
WS_CLOSES = Counter(
    "wastecoach_ws_closes", "WebSocket closes, by close code (either side's).", ["code"]
)
SCANS = Counter("wastecoach_scans", "Finished scans, by status.", ["status"])
SCAN_TIME_TO_CLASSIFIED = Histogram(
    "wastecoach_scan_time_to_classified_seconds",
    "From the scan's acceptance to its scan.classified event.",
    buckets=_LATENCY_BUCKETS,
)
STAGE_DURATION = Histogram(
    "wastecoach_stage_duration_seconds", "Duration of one pipeline stage.", ["stage"],
    buckets=_LATENCY_BUCKETS,
)
LLM_TOKENS = Counter(
    "wastecoach_llm_tokens", "Tokens of LLM requests, as the upstream reports them.", ["kind"]
)
LLM_FALLBACKS = Counter(
    "wastecoach_llm_fallbacks",
    "LLM answers replaced (wholly or after a partial answer) by the embedded coach.",
    ["reason"],
)
ERRORS = Counter("wastecoach_errors", "Error events sent to clients, by error code.", ["code"])
REDIS_HUB_RECONNECTS = Counter(
    "wastecoach_redis_hub_reconnects", "Reconnects of the Redis pub/sub hub."
)
REDIS_HUB_UP = Gauge(
    "wastecoach_redis_hub_up",
    "1 while the Redis pub/sub hub is subscribed, 0 while it reconnects (no series embedded).",
)
QUEUE_PUBLISH_FAILURES = Counter(
    "wastecoach_queue_publish_failures", "Jobs that could not be published to RabbitMQ."
)

# Series that exist from the start read 0 rather than nothing: rate() and the alerts below it
# see the first error, not a new series appearing.
for _status in ScanStatus:
    SCANS.labels(status=_status.value)
for _stage in STAGES:
    STAGE_DURATION.labels(stage=_stage)
for _kind in ("prompt", "completion"):
    LLM_TOKENS.labels(kind=_kind)
for _code in ErrorCode:
    ERRORS.labels(code=_code.value)

# The top-level "type" of an event as the log writes it (json.dumps, compact): the first key
# named "type" that follows "{" or ",". Inside a JSON string a quote is always escaped, so a
# client's request_id cannot fake it; a nested object's "type" comes after the event's own.
_TYPE = re.compile(r'[{,]"type":"([a-z._]{1,40})"')
_CODE = re.compile(r'[{,]"code":"([a-z_]{1,40})"')


def count_sent(text: str) -> None:
    """Count one event written to a client's socket (and its error code, for an error)."""
    match = _TYPE.search(text)
    kind = match.group(1) if match is not None and match.group(1) in EVENT_TYPES else OTHER
    WS_EVENTS_SENT.labels(type=kind).inc()
    if kind == "error":
        found = _CODE.search(text)
        code = found.group(1) if found is not None and found.group(1) in _ERROR_CODES else OTHER
        ERRORS.labels(code=code).inc()


def count_close(code: int | None) -> None:
    """Count one closed WebSocket; ``None`` when it dropped without a close frame."""
    value = 1006 if code is None else code
    WS_CLOSES.labels(code=str(value) if value in _CLOSE_CODES else OTHER).inc()


def serve(port: int, host: str = "0.0.0.0") -> bool:
    """Serve this process's metrics over HTTP on ``port`` (a worker's; 0: not at all).

    A port already taken is logged, not fatal: a worker that cannot be scraped still does its
    work, and Prometheus shows the missing target (``up == 0``)."""
    if port == 0:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.error("metrics are not served: port %d: %s", port, exc)
        return False
    log.info("metrics on http://%s:%d/metrics", host, port)
    return True
