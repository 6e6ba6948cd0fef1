"""deploy/grafana: the dashboard is valid JSON for Grafana, reads only series the services
export, and shows what operators need: sessions, scans, stage latency, the LLM, errors and the
queue."""

from __future__ import annotations

import json

from tests.deploy.conftest import GRAFANA, metric_names, series_allowed


def _panels() -> list[dict]:  # type: ignore[type-arg]
    dashboard = json.loads((GRAFANA / "wastecoach.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_every_panel_reads_exported_series() -> None:
    ids = [p["id"] for p in _panels()]
    assert len(ids) == len(set(ids))
    for panel in _panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, f"{panel['title']}: {target['expr']}"
            assert all(series_allowed(n) for n in names), (panel["title"], names)
            # The datasource is the dashboard's variable, so it loads on any Grafana.
            assert target["datasource"]["uid"] == "${datasource}"


def test_the_dashboard_covers_what_operators_watch() -> None:
    read = {n for p in _panels() for t in p["targets"] for n in metric_names(t["expr"])}
    assert {
        "wastecoach_ws_sessions_open",
        "wastecoach_scans_total",
        "wastecoach_stage_duration_seconds_bucket",
        "wastecoach_scan_time_to_classified_seconds_bucket",
        "wastecoach_llm_tokens_total",
        "wastecoach_llm_fallbacks_total",
        "wastecoach_errors_total",
        "rabbitmq_queue_messages_ready",
    } <= read
