"""Every setting of server/settings.py reaches the pods: as a ConfigMap key, as a Secret key
mounted by name, or listed in configmap.yaml as unset on purpose; and what the ConfigMap says
starts the server in distributed mode (a typo there would stop every pod at start)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from server.auth.config import OAuthProviderSettings
from server.settings import Mode, QueueType, Settings
from tests.deploy.conftest import K8S, objects_by_kind


def _leaves(model: type[BaseModel], prefix: str) -> set[str]:
    """The environment variable of every scalar setting under ``model``."""
    names = set()
    for field, info in model.model_fields.items():
        name = f"{prefix}{field.upper()}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= _leaves(annotation, f"{name}__")
        elif field == "providers":
            for provider in Settings().accounts.providers:
                names |= _leaves(OAuthProviderSettings, f"{name}__{provider.upper()}__")
        else:
            names.add(name)
    return names


def _configmap() -> dict[str, str]:
    (config,) = objects_by_kind("ConfigMap")
    return config["data"]  # type: ignore[return-value]


def _secret_env(kind: str, name: str) -> dict[str, str]:
    """The variables a workload takes from the Secret, and the Secret's key for each."""
    (workload,) = [o for o in objects_by_kind(kind) if o["metadata"]["name"] == name]  # type: ignore[index]
    container = workload["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def _unset_on_purpose() -> set[str]:
    """The names configmap.yaml lists, in its closing comment, as left unset."""
    text = (K8S / "configmap.yaml").read_text()
    tail = text.split("# Left unset on purpose", 1)[1]
    names = set()
    for token in tail.replace(",", " ").split():
        if token.startswith("WASTECOACH_"):
            names.add(token)
        elif token.startswith("__"):
            names.add(f"WASTECOACH_ACCOUNTS__PROVIDERS__*{token}")
    return names


def _covered(name: str, covered: set[str]) -> bool:
    if name in covered:
        return True
    # A provider wildcard in the unset list: WASTECOACH_ACCOUNTS__PROVIDERS__*__TOKEN_URL.
    parts = name.split("__")
    if name.startswith("WASTECOACH_ACCOUNTS__PROVIDERS__") and len(parts) == 4:
        return f"WASTECOACH_ACCOUNTS__PROVIDERS__*__{parts[3]}" in covered
    return False


def test_every_setting_is_wired() -> None:
    settings = _leaves(Settings, "WASTECOACH_")
    assert len(settings) > 80  # the walk found the nested sections
    secrets = _secret_env("Deployment", "wastecoach-api")
    covered = set(_configmap()) | set(secrets) | _unset_on_purpose()
    missing = sorted(n for n in settings if not _covered(n, covered))
    assert not missing, f"in neither the ConfigMap, the Secret nor the unset list: {missing}"
    # The ConfigMap names nothing the server does not read (a typo would be ignored silently).
    unknown = sorted(set(_configmap()) - settings)
    assert not unknown, unknown


def test_every_component_gets_the_same_secrets() -> None:
    api = _secret_env("Deployment", "wastecoach-api")
    assert _secret_env("Deployment", "wastecoach-worker") == api
    assert _secret_env("Job", "wastecoach-migrate") == api
    for required in ("WASTECOACH_DATABASE_URL", "WASTECOACH_AUTH__JWT_SECRET",
                     "WASTECOACH_REDIS_URL", "WASTECOACH_BROKER_URL"):
        assert required in api


def test_the_configmap_starts_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _configmap().items():
        monkeypatch.setenv(name, value)
    # Stand-ins for the Secret's values (ansible/roles/wastecoach_secrets writes the real ones).
    monkeypatch.setenv("WASTECOACH_DATABASE_URL", "postgresql+asyncpg://u:p@postgres/wastecoach")
    monkeypatch.setenv("WASTECOACH_REDIS_URL", "redis://:p@redis:6379/0")
    monkeypatch.setenv("WASTECOACH_BROKER_URL", "amqp://u:p@rabbitmq:5672/wastecoach")
    monkeypatch.setenv("WASTECOACH_AUTH__JWT_SECRET", "x" * 64)
    settings = Settings()
    assert settings.mode is Mode.DISTRIBUTED
    assert settings.celery_queue_type is QueueType.QUORUM
    assert settings.guest_enabled is False
    assert settings.uploads.content_types == ("image/jpeg", "image/png", "image/webp")
    assert settings.session.max_unsent_events == settings.session.replay_max_events // 5
    # Providers stay off until their client ids are filled in, with their endpoints intact.
    assert not any(p.enabled for p in settings.accounts.providers.values())
    assert settings.accounts.providers["google"].jwks_url
