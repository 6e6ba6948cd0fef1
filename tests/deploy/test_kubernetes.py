"""deploy/k8s and deploy/argocd: every object valid against the Kubernetes API schemas or its
CRD's, checkov clean, Kustomize listing every file, and the numbers that must agree with the
server's code (drain, heartbeat, queue, metric names) agreeing with it."""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess

import pytest
import yaml

from server.cli import server_config
from server.settings import SessionSettings, Settings
from server.ws.registry import Connections
from tests.deploy.conftest import (
    K8S,
    ROOT,
    assert_checkov_clean,
    load_documents,
    manifest_files,
    metric_names,
    objects_by_kind,
    run_tool,
    series_allowed,
    tool,
)
from workers.app import TASK_TIME_LIMIT_S

#: The Kubernetes release ansible/group_vars/all/versions.yml installs.
KUBERNETES_VERSION = (
    yaml.safe_load((ROOT / "ansible/group_vars/all/versions.yml").read_text())["kubernetes_version"]
)


def _one(kind: str, name: str) -> dict:  # type: ignore[type-arg]
    matches = [o for o in objects_by_kind(kind) if o["metadata"]["name"] == name]  # type: ignore[index]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def test_every_object_validates_against_its_schema() -> None:
    files = manifest_files()
    assert len(files) >= 12
    result = run_tool(
        [tool("python"), ROOT / "tests/deploy/k8s_validate.py", KUBERNETES_VERSION, *files]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Every object was checked by a schema (none skipped as unknown).
    objects = sum(len(load_documents(f)) for f in files)
    assert result.stdout.count("\nok ") + result.stdout.startswith("ok ") == objects


def test_the_validator_refuses_a_wrong_object(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The check above can fail: an unknown field in a CRD object, and a kind nothing knows.
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\n"
        "spec: {scaleTargetRef: {name: y}, triggers: [], pollingEvery: 5}\n"
        "---\napiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: z}\n"
    )
    result = run_tool([tool("python"), ROOT / "tests/deploy/k8s_validate.py", "1.33.0", bad])
    assert result.returncode == 1
    assert "pollingEvery" in result.stdout and "no schema knows this kind" in result.stdout


def test_checkov_finds_nothing() -> None:
    # deploy/argocd holds only Argo CD's own kinds, which checkov has no checks for (it
    # reports no resource there); the schema check above covers them.
    assert_checkov_clean("kubernetes", min_passed=200)


def test_kustomization_applies_every_manifest_and_nothing_else() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {f.name for f in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    # No patches or generators: CI validates the files exactly as Argo CD applies them.
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "images"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with Kustomize) absent")
def test_kustomize_renders_the_same_objects() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True
    ).stdout
    got = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(rendered) if d}
    want = {
        (d["kind"], d["metadata"]["name"])  # type: ignore[index]
        for f in K8S.glob("*.yaml") if f.name != "kustomization.yaml"
        for d in load_documents(f)
    }
    assert got == want


def test_the_api_outlives_its_drain() -> None:
    """preStop, then the server's drain (runner wait + 1012 flush) and uvicorn's own graceful
    shutdown must all fit in the grace period, or the kubelet's SIGKILL cuts the flush."""
    api = _one("Deployment", "wastecoach-api")["spec"]["template"]["spec"]
    grace_s = api["terminationGracePeriodSeconds"]
    pre_stop_s = api["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    flush_s = inspect.signature(Connections.drain).parameters["grace_s"].default
    drain_s = flush_s / 2 + flush_s  # runner.wait_idle(grace/2), then the connections
    uvicorn_s = server_config(Settings(), app=None).timeout_graceful_shutdown  # type: ignore[arg-type]
    assert uvicorn_s is not None
    assert grace_s > pre_stop_s + drain_s + uvicorn_s
    # The balancer keeps the sockets at least as long as the pod drains them.
    ingress = _one("Ingress", "wastecoach")["metadata"]["annotations"]
    delay = re.search(r"deregistration_delay.timeout_seconds=(\d+)",
                      ingress["alb.ingress.kubernetes.io/target-group-attributes"])
    assert delay and int(delay.group(1)) >= pre_stop_s + drain_s + uvicorn_s


def test_the_alb_idle_timeout_fits_the_heartbeat() -> None:
    config = _one("ConfigMap", "wastecoach")["data"]
    heartbeat_s = float(config["WASTECOACH_SESSION__HEARTBEAT_INTERVAL_S"])
    idle_close_s = float(config["WASTECOACH_SESSION__IDLE_TIMEOUT_S"])
    assert heartbeat_s == SessionSettings().heartbeat_interval_s
    attributes = _one("Ingress", "wastecoach")["metadata"]["annotations"][
        "alb.ingress.kubernetes.io/load-balancer-attributes"
    ]
    match = re.search(r"idle_timeout.timeout_seconds=(\d+)", attributes)
    assert match
    alb_idle_s = int(match.group(1))
    # Two heartbeats may go missing; the server, not the ALB, ends idle sessions.
    assert 2 * heartbeat_s < alb_idle_s < idle_close_s


def test_the_worker_finishes_its_scans_before_it_is_killed() -> None:
    worker = _one("Deployment", "wastecoach-worker")["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] >= TASK_TIME_LIMIT_S


def test_keda_watches_the_queue_the_workers_consume() -> None:
    config = _one("ConfigMap", "wastecoach")["data"]
    assert config["WASTECOACH_CELERY_QUEUE"] == Settings().celery_queue
    trigger = _one("ScaledObject", "wastecoach-worker")["spec"]["triggers"][0]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == config["WASTECOACH_CELERY_QUEUE"]
    # /readyz needs a consumer on the queue: never scale the workers to zero.
    assert _one("ScaledObject", "wastecoach-worker")["spec"]["minReplicaCount"] >= 1


def test_the_autoscaler_and_the_rules_use_exported_metrics() -> None:
    hpa = _one("HorizontalPodAutoscaler", "wastecoach-api")["spec"]["metrics"]
    custom = [m["pods"]["metric"]["name"] for m in hpa if m["type"] == "Pods"]
    assert custom == ["wastecoach_ws_sessions_open"]
    used = set()
    rules = [r for o in objects_by_kind("PrometheusRule")
             for g in o["spec"]["groups"] for r in g["rules"]]  # type: ignore[index]
    recorded = {r["record"] for r in rules if "record" in r}
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names or any(r in rule["expr"] for r in recorded), f"{rule} reads nothing"
        used |= names
    assert used, "no metric found in the rules"
    assert all(series_allowed(n) for n in used), sorted(n for n in used if not series_allowed(n))
    # The four alerts the deployment promises.
    alerts = {r["alert"] for o in objects_by_kind("PrometheusRule")
              for g in o["spec"]["groups"] for r in g["rules"] if "alert" in r}  # type: ignore[index]
    assert {"WastecoachServerErrorsHigh", "WastecoachTimeToClassifiedSlow",
            "WastecoachScanQueueBacklog", "WastecoachRedisHubDown"} <= alerts
    assert {"wastecoach_redis_hub_up", "wastecoach_errors_total"} <= used


def test_pods_run_unprivileged_with_limits_and_probes() -> None:
    for kind in ("Deployment", "Job"):
        for workload in objects_by_kind(kind):
            pod = workload["spec"]["template"]["spec"]  # type: ignore[index]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["automountServiceAccountToken"] is False
            for container in pod["containers"]:
                assert container["securityContext"]["readOnlyRootFilesystem"] is True
                assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
                assert {"cpu", "memory"} <= set(container["resources"]["limits"])
                if kind == "Deployment":
                    assert "livenessProbe" in container and "readinessProbe" in container
