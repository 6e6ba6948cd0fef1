"""The deployment reads only metrics the code exports: every ``wastecoach_*`` series named by
the Grafana dashboard, the PrometheusRules, KEDA, the HPA and prometheus-adapter's rules
exists in server.metrics's registry, with the suffix prometheus_client gives its type. A
metric renamed in the code fails here instead of leaving an empty panel or a silent alert."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

import server.metrics
from tests.deploy.conftest import ANSIBLE, GRAFANA, K8S, exported_series

# A series name as PromQL, JSON and YAML write it; `wastecoach:` recording rules are not
# series, and the lookbehind keeps `x_wastecoach_y` from matching.
_SERIES = re.compile(r"(?<![\w:])wastecoach_[a-z0-9_]+")

#: Where the deployment names series: the dashboard, the PrometheusRules, the HPA, KEDA and
#: prometheus-adapter's rules. Other files have `wastecoach_*` words that are not metrics
#: (Ansible variables named in comments).
_READERS = [
    *sorted(GRAFANA.glob("*.json")),
    *(K8S / name for name in ("monitoring.yaml", "autoscaling.yaml", "keda.yaml")),
    ANSIBLE / "roles/monitoring/templates/prometheus-adapter.yaml.j2",
]


def _used(path: Path) -> set[str]:
    return set(_SERIES.findall(path.read_text(encoding="utf-8")))


def test_the_registry_gives_each_type_its_series() -> None:
    series = exported_series()
    # A counter is scraped with _total only; a gauge bare; a histogram as its three parts.
    assert "wastecoach_scans_total" in series
    assert "wastecoach_scans" not in series
    assert "wastecoach_redis_hub_up" in series
    assert "wastecoach_redis_hub_up_total" not in series
    parts = ("_bucket", "_sum", "_count")
    assert {f"wastecoach_stage_duration_seconds{s}" for s in parts} <= series
    assert "wastecoach_stage_duration_seconds" not in series
    # Every metric server.metrics declares is there, labelled ones without children included.
    declared = {
        family.name
        for metric in vars(server.metrics).values()
        if isinstance(metric, MetricWrapperBase)
        for family in metric.describe()
    }
    assert len(declared) >= 13
    assert all(any(s.startswith(name) for s in series) for name in declared), declared


def test_every_series_the_deployment_reads_is_exported() -> None:
    used = {path.name: _used(path) for path in _READERS}
    # The scan finds what it should in the dashboard, the rules and the adapter's config.
    assert "wastecoach_scans_total" in used["wastecoach.json"]
    assert "wastecoach_redis_hub_up" in used["monitoring.yaml"]
    assert "wastecoach_ws_sessions_open" in used["autoscaling.yaml"]
    assert "wastecoach_ws_sessions_open" in used["prometheus-adapter.yaml.j2"]
    unknown = {name: sorted(names - exported_series()) for name, names in used.items()}
    assert not any(unknown.values()), {k: v for k, v in unknown.items() if v}
