"""What the checks of deploy/, terraform/ and ansible/ share: where things are, how to run the
tools of .venv-deploy (scripts/_venv_deploy.sh builds it; scripts/test.sh runs that first), and
the metric series the API and the workers export (read from server.metrics).

The tools have their own virtualenv because their pins conflict with the product's lock; they
run as subprocesses, offline.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_VENV = ROOT / ".venv-deploy"
K8S = ROOT / "deploy" / "k8s"
ARGOCD = ROOT / "deploy" / "argocd"
DOCKER = ROOT / "deploy" / "docker"
GRAFANA = ROOT / "deploy" / "grafana"
TERRAFORM = ROOT / "terraform"
ANSIBLE = ROOT / "ansible"

#: What each kind of prometheus_client metric family exposes as series: a counter named
#: ``x`` is scraped as ``x_total``, a histogram as its buckets, sum and count.
_SERIES_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}


@functools.cache
def exported_series() -> frozenset[str]:
    """Every ``wastecoach_*`` series the API and the workers export, read from the registry
    server.metrics fills (the one module that declares them; docs/deploy.md, "Metrics"), so
    the dashboard, the alerts and the autoscaler are checked against the code, not a list.
    Families come from the collectors' declarations: a labelled metric with no child yet has
    no sample but still has its name and type."""
    from prometheus_client import REGISTRY

    import server.metrics  # noqa: F401 (importing it registers the metrics)

    return frozenset(
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("wastecoach_")
        for suffix in _SERIES_SUFFIXES[family.type]
    )


def series_allowed(name: str) -> bool:
    """Whether a series name is one the services export: one of server.metrics's, RabbitMQ's
    plugin's, a default process collector's, or Prometheus's own."""
    if name.startswith("wastecoach_"):
        return name in exported_series()
    return name.startswith(("rabbitmq_", "process_")) or name == "up"


def tool(name: str) -> Path:
    path = DEPLOY_VENV / "bin" / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: build the deploy tools with scripts/_venv_deploy.sh "
            "(scripts/test.sh does it first)"
        )
    return path


def tool_env() -> dict[str, str]:
    return {
        **os.environ,
        # The tools find each other (ansible-lint runs ansible-playbook) in their own venv.
        "PATH": f"{DEPLOY_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "NO_COLOR": "1",
        # checkov: no calls home, no download of external checks.
        "BC_SKIP_MAPPING": "TRUE",
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
    }


def run_tool(args: list[str | Path], *, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool of .venv-deploy, offline, and return what it did (the caller asserts)."""
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def load_documents(path: Path) -> list[dict[str, object]]:
    """The YAML documents of one manifest file, without the empty ones."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest: deploy/k8s (what Argo CD applies) and deploy/argocd."""
    files = sorted(K8S.glob("*.yaml")) + sorted(ARGOCD.glob("*.yaml"))
    return [f for f in files if f.name != "kustomization.yaml"]


def objects_by_kind(kind: str) -> list[dict[str, object]]:
    return [doc for f in manifest_files() for doc in load_documents(f) if doc["kind"] == kind]


#: The slow tools, started together once per session (they take most of this folder's time,
#: and on two cores running them side by side beats running them in turn): name -> command
#: and working directory. Each test then waits for the one it reads.
SLOW_TOOLS: dict[str, tuple[list[str], Path]] = {
    "checkov": (
        ["checkov", "--compact", "--skip-download", "-o", "json",
         "--framework", "kubernetes", "dockerfile", "terraform",
         "-d", "deploy/k8s", "-d", "deploy/docker", "-d", "terraform"],
        ROOT,
    ),
    "ansible-lint": (["ansible-lint", "--offline", "--nocolor"], ANSIBLE),
}
_running: dict[str, tuple[subprocess.Popen[str], Path]] = {}


def start_slow_tool(name: str) -> None:
    if name in _running:
        return
    args, cwd = SLOW_TOOLS[name]
    out = Path(tempfile.mkdtemp(prefix="wastecoach-deploy-")) / f"{name}.out"
    with out.open("w") as handle:
        proc = subprocess.Popen(
            [str(tool(args[0])), *args[1:]], cwd=cwd, env=tool_env(), stdout=handle,
            stderr=subprocess.STDOUT, text=True,
        )
    _running[name] = (proc, out)


def slow_tool_result(name: str) -> tuple[int, str]:
    """Exit code and output of one of SLOW_TOOLS (started now if it was not yet)."""
    start_slow_tool(name)
    proc, out = _running[name]
    returncode = proc.wait(timeout=600)
    return returncode, out.read_text()


@pytest.fixture(scope="session", autouse=True)
def _slow_tools(request: pytest.FixtureRequest) -> Iterator[None]:
    """Start, side by side, the slow tools that the selected tests will read."""
    selected = " ".join(item.nodeid for item in request.session.items)
    for name in SLOW_TOOLS:
        if name.replace("-", "_") in selected:
            start_slow_tool(name)
    yield
    for proc, _ in _running.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def checkov_findings(check_type: str) -> dict[str, list[dict[str, object]] | int]:
    """checkov's findings of one kind (kubernetes, dockerfile, terraform): the failed and the
    skipped checks, and how many passed. checkov runs offline (no platform key: it does not
    know severities), so the bar is that nothing fails at all, and that every skip says why."""
    returncode, output = slow_tool_result("checkov")
    assert returncode in (0, 1), output[-3000:]
    # One JSON value per framework, printed one after another.
    decoder, reports, at = json.JSONDecoder(), [], 0
    first = re.search(r"^[\[{]", output, re.M)
    assert first, output[-3000:]
    text = output[first.start():]
    while at < len(text):
        value, at = decoder.raw_decode(text, at)
        reports += value if isinstance(value, list) else [value]
        while at < len(text) and text[at].isspace():
            at += 1
    mine = [r for r in reports if r.get("check_type") == check_type]
    assert mine, f"checkov reported nothing of type {check_type}"
    return {
        "failed": [c for r in mine for c in r["results"]["failed_checks"]],
        "skipped": [c for r in mine for c in r["results"]["skipped_checks"]],
        "passed": sum(int(r["summary"]["passed"]) for r in mine),
        "parsing_errors": sum(int(r["summary"]["parsing_errors"]) for r in mine),
    }


def assert_checkov_clean(check_type: str, *, min_passed: int) -> None:
    found = checkov_findings(check_type)
    failed = [f"{c['check_id']} {c['resource']} {c['file_path']}" for c in found["failed"]]  # type: ignore[index,union-attr]
    assert not failed, failed
    assert found["parsing_errors"] == 0
    assert found["passed"] >= min_passed  # type: ignore[operator]
    for check in found["skipped"]:  # type: ignore[union-attr]
        reason = str(check["check_result"].get("suppress_comment", ""))  # type: ignore[index]
        assert len(reason) >= 20, f"{check['check_id']} skipped without a reason"  # type: ignore[index]


def metric_names(expr: str) -> set[str]:
    """The series a PromQL expression reads, by the prefixes this deployment's metrics have
    (recording rules, named `wastecoach:...`, are not series)."""
    return set(re.findall(r"(?<![:\w])((?:wastecoach|rabbitmq|process)_[a-z0-9_]+|up)\b", expr))
