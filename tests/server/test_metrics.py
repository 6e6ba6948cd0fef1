"""``GET /metrics`` (server/metrics.py), scraped over HTTP as Prometheus does, in both modes:
a scan moves the API process's event counters and, where the pipeline runs (this process
embedded, the Celery worker's own port distributed), the scan and stage figures."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis

from server.events.redis import RedisEventLog, RedisHub
from server.metrics import EVENT_TYPES
from tests.conftest import Stack
from tests.support.client import CoachClient
from tests.support.metrics import Samples, eventually, scrape, value
from tests.support.redis_server import private_redis

pytestmark = pytest.mark.timeout(120)


def api_url(stack: Stack) -> str:
    return stack.base_url + "/metrics"


def pipeline_url(stack: Stack) -> str:
    """Where scans are counted: the process that runs the pipeline."""
    if stack.mode == "distributed":
        return f"http://127.0.0.1:{stack.settings.metrics_port}/metrics"
    return api_url(stack)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def wait_for_no_connections(stack: Stack) -> None:
    """The previous test's client has gone: its connection left the server's registry."""
    connections = stack.app.state.connections  # type: ignore[attr-defined]
    for _ in range(200):
        if len(connections) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(connections)} connections still open")


async def test_a_scan_moves_the_counters_and_histograms(
    stack: Stack, client: CoachClient
) -> None:
    api_before = await scrape(api_url(stack))
    pipe_before = await scrape(pipeline_url(stack))
    events = await client.run_scan()
    assert events[-1]["type"] == "scan.done" and events[-1]["status"] == "completed", events

    scans = "wastecoach_scans_total"
    pipe_after = await eventually(
        pipeline_url(stack), lambda s: moved(pipe_before, s, scans, status="completed") >= 1
    )
    assert moved(pipe_before, pipe_after, scans, status="completed") == 1
    assert moved(pipe_before, pipe_after, scans, status="failed") == 0
    classified = "wastecoach_scan_time_to_classified_seconds"
    assert moved(pipe_before, pipe_after, classified + "_count") == 1
    assert moved(pipe_before, pipe_after, classified + "_sum") > 0
    for stage in ("vision", "coach", "locations"):
        assert moved(
            pipe_before, pipe_after, "wastecoach_stage_duration_seconds_count", stage=stage
        ) == 1, stage
    # No clarify question was asked: that stage was not timed.
    assert moved(
        pipe_before, pipe_after, "wastecoach_stage_duration_seconds_count", stage="clarify"
    ) == 0

    api_after = await scrape(api_url(stack))
    sent = "wastecoach_ws_events_sent_total"
    for kind in ("scan.accepted", "scan.classified", "coaching.done", "bins.suggested",
                 "scan.done"):
        assert moved(api_before, api_after, sent, type=kind) == 1, kind
    assert moved(api_before, api_after, sent, type="coaching.delta") == sum(
        e["type"] == "coaching.delta" for e in events
    )
    assert moved(api_before, api_after, "wastecoach_ws_send_queue_depth_count") >= len(events)


async def test_the_metrics_page_is_open_and_says_nothing_private(
    stack: Stack, client: CoachClient
) -> None:
    await client.run_scan()
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.get("/metrics")  # no credentials
        schema = (await http.get("/openapi.json")).json()
    assert response.status_code == 200
    text = response.text
    assert "process_resident_memory_bytes" in text  # the default collectors stay on
    assert client.session_id and client.session_id not in text
    assert client.ready is not None and client.ready["user_id"] not in text
    assert "/metrics" not in schema["paths"]
    # Every label takes its values from a closed set.
    for family in ("wastecoach_ws_events_sent_total",):
        for line in text.splitlines():
            if line.startswith(family + "{"):
                kind = line.split('type="', 1)[1].split('"', 1)[0]
                assert kind in EVENT_TYPES or kind == "other", line


async def test_errors_by_code_and_the_1008_close_are_counted(
    stack: Stack, client: CoachClient
) -> None:
    before = await scrape(api_url(stack))
    await client.send("{not json")
    error = await client.recv()
    assert error["type"] == "error" and error["code"] == "invalid_json"
    after = await scrape(api_url(stack))
    assert moved(before, after, "wastecoach_errors_total", code="invalid_json") == 1
    assert moved(before, after, "wastecoach_ws_events_sent_total", type="error") == 1

    # Garbage in a row: the server closes with 1008, and counts that close once.
    for _ in range(10):
        await client.send("[]")
    closes = "wastecoach_ws_closes_total"
    after = await eventually(api_url(stack), lambda s: moved(before, s, closes, code="1008") >= 1)
    assert moved(before, after, closes, code="1008") == 1
    assert moved(before, after, "wastecoach_errors_total", code="invalid_message") >= 9


async def test_sessions_open_goes_up_and_down(stack: Stack, guest_token: str) -> None:
    await wait_for_no_connections(stack)
    gauge = "wastecoach_ws_sessions_open"
    before = await scrape(api_url(stack))
    base = value(before, gauge)
    clients = [CoachClient(stack.ws_url, guest_token) for _ in range(3)]
    for c in clients:
        assert (await c.connect())["type"] == "session.ready"
    opened = await scrape(api_url(stack))
    assert value(opened, gauge) == base + 3
    for c in clients:
        await c.close()  # a normal close, 1000
    after = await eventually(api_url(stack), lambda s: value(s, gauge) == base)
    assert value(after, gauge) == base
    assert moved(before, after, "wastecoach_ws_closes_total", code="1000") == 3


async def test_redis_hub_reconnects_are_counted() -> None:
    """Killing the hub's pub/sub connection (a private Redis: the machine's is shared) makes it
    reconnect, and the counter says so."""
    from prometheus_client import REGISTRY

    def reconnects() -> float:
        return REGISTRY.get_sample_value("wastecoach_redis_hub_reconnects_total") or 0.0

    with private_redis() as server:
        hub = RedisHub(server.url)
        await hub.start()
        log = RedisEventLog(server.url, hub=hub)
        admin = aioredis.Redis.from_url(server.url)
        try:
            assert await hub.wait_up(10)
            assert REGISTRY.get_sample_value("wastecoach_redis_hub_up") == 1
            before = reconnects()
            await admin.client_kill_filter(_type="pubsub")
            for _ in range(300):
                if hub.reconnects:
                    break
                await asyncio.sleep(0.05)
            assert hub.reconnects == 1
            assert reconnects() == before + 1
            assert REGISTRY.get_sample_value("wastecoach_redis_hub_up") == 1
        finally:
            await admin.aclose()
            await log.close()
            await hub.close()
