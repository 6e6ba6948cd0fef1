"""Production defaults: secrets required, guest login off unless asked for."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from server.settings import AuthSettings, Mode, Settings


def test_embedded_default_needs_nothing() -> None:
    settings = Settings()
    assert settings.embedded and settings.guest_enabled
    assert settings.sqlalchemy_url.startswith("sqlite+aiosqlite:///")


def test_distributed_requires_database_and_secret() -> None:
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(mode=Mode.DISTRIBUTED)
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(mode=Mode.DISTRIBUTED, database_url="postgresql+asyncpg://x/y")


def test_guest_login_is_off_in_production_unless_enabled() -> None:
    base = dict(mode=Mode.DISTRIBUTED, database_url="postgresql+asyncpg://x/y")
    off = Settings(**base, auth=AuthSettings(jwt_secret=SecretStr("s")))  # type: ignore[arg-type]
    assert off.guest_enabled is False
    on = Settings(**base, auth=AuthSettings(jwt_secret=SecretStr("s"), guest_enabled=True))  # type: ignore[arg-type]
    assert on.guest_enabled is True


def test_environment_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WASTECOACH_SESSION__MAX_CONCURRENT_SCANS", "7")
    monkeypatch.setenv("WASTECOACH_OPENAI__API_KEY", "sk-test")
    settings = Settings()
    assert settings.session.max_concurrent_scans == 7
    assert settings.openai.api_key is not None
    assert settings.openai.api_key.get_secret_value() == "sk-test"
    assert "sk-test" not in repr(settings)


def test_access_log_drops_query_strings() -> None:
    import logging

    from server.cli import _StripQuery

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/api/v1/auth/kakao/callback?code=SECRET&state=S", "1.1", 302),
        None,
    )
    assert _StripQuery().filter(record)
    assert "SECRET" not in record.getMessage()
    assert "/api/v1/auth/kakao/callback" in record.getMessage()
