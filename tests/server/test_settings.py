"""Production defaults: secrets required, guest login off unless asked for."""

from __future__ import annotations

from pathlib import Path

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


def test_concurrency_caps_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().session.max_concurrent_chats == 2
    monkeypatch.setenv("WASTECOACH_SESSION__MAX_CONCURRENT_CHATS", "5")
    assert Settings().session.max_concurrent_chats == 5
    monkeypatch.setenv("WASTECOACH_SESSION__MAX_CONCURRENT_CHATS", "0")
    with pytest.raises(ValidationError, match="max_concurrent_chats"):
        Settings()


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


@pytest.fixture
def listen_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No host, port or public URL from the environment the tests happen to run in."""
    for name in ("WASTECOACH_HOST", "WASTECOACH_PORT", "WASTECOACH_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_public_url_defaults_to_where_the_server_listens(listen_env: pytest.MonkeyPatch) -> None:
    assert Settings().public_base_url == "http://127.0.0.1:8000"
    listen_env.setenv("WASTECOACH_PORT", "8111")
    assert Settings().public_base_url == "http://127.0.0.1:8111"


@pytest.mark.parametrize(
    ("host", "url_host"),
    [
        ("0.0.0.0", "127.0.0.1"),  # every interface: reached through loopback
        ("::", "localhost"),
        ("", "127.0.0.1"),
        ("::1", "[::1]"),
        ("192.168.0.7", "192.168.0.7"),
        ("coach.lan", "coach.lan"),
    ],
)
def test_public_url_uses_a_reachable_address_for_the_host(
    listen_env: pytest.MonkeyPatch, host: str, url_host: str
) -> None:
    listen_env.setenv("WASTECOACH_HOST", host)
    listen_env.setenv("WASTECOACH_PORT", "8111")
    assert Settings().public_base_url == f"http://{url_host}:8111"


def test_explicit_public_url_wins(listen_env: pytest.MonkeyPatch) -> None:
    listen_env.setenv("WASTECOACH_PUBLIC_URL", "https://coach.example.kr")
    listen_env.setenv("WASTECOACH_PORT", "8111")
    assert Settings().public_base_url == "https://coach.example.kr"


def _serve_settings(argv: list[str]) -> Settings:
    import argparse

    from server.cli import serve_settings
    from server.settings import get_settings

    parser = argparse.ArgumentParser()
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    get_settings.cache_clear()
    try:
        return serve_settings(parser.parse_args(argv))
    finally:
        get_settings.cache_clear()


def test_serve_flags_move_the_public_url_too(listen_env: pytest.MonkeyPatch) -> None:
    listen_env.setenv("WASTECOACH_PORT", "9000")
    settings = _serve_settings(["--host", "0.0.0.0", "--port", "8111"])
    assert (settings.host, settings.port) == ("0.0.0.0", 8111)
    assert settings.public_base_url == "http://127.0.0.1:8111"
    assert _serve_settings([]).public_base_url == "http://127.0.0.1:9000"
    listen_env.setenv("WASTECOACH_PUBLIC_URL", "https://coach.example.kr")
    assert _serve_settings(["--port", "8111"]).public_base_url == "https://coach.example.kr"


async def test_upload_links_point_at_the_public_url(
    listen_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from server.container import build_storage

    settings = Settings(data_dir=tmp_path, port=8111)
    ticket = await build_storage(settings).presign_put(
        "u/1.jpg", content_type="image/jpeg", size=10, ttl_s=60
    )
    assert ticket.url.startswith("http://127.0.0.1:8111/api/v1/uploads/local/u/1.jpg?")


def test_the_log_is_kept_alive_well_inside_its_ttl() -> None:
    from server.settings import SessionSettings

    assert SessionSettings().touch_interval_s == 30.0
    short = SessionSettings(replay_ttl_s=10)
    assert short.touch_interval_s < short.replay_ttl_s / 2


def test_the_clarify_wait_fits_in_the_scans_deadline() -> None:
    from server.pipeline.run import SCAN_DEADLINE_S
    from server.settings import SessionSettings

    with pytest.raises(ValidationError, match="clarify_timeout_s"):
        SessionSettings(clarify_timeout_s=SCAN_DEADLINE_S)
    assert SessionSettings(clarify_timeout_s=120).clarify_timeout_s < SCAN_DEADLINE_S


def test_the_worker_time_limit_covers_a_scan_and_its_saves() -> None:
    from server.pipeline.emitter import APPEND_PATIENCE_S
    from server.pipeline.run import RECORD_PATIENCE_S, SCAN_DEADLINE_S
    from workers.app import TASK_TIME_LIMIT_S, make_celery

    assert TASK_TIME_LIMIT_S > SCAN_DEADLINE_S + RECORD_PATIENCE_S + APPEND_PATIENCE_S
    conf = make_celery("amqp://guest:guest@127.0.0.1:5672//").conf
    assert conf.task_time_limit == TASK_TIME_LIMIT_S
    assert SCAN_DEADLINE_S < conf.task_soft_time_limit < conf.task_time_limit


def test_the_websocket_layer_takes_more_than_the_session_accepts() -> None:
    from protocol.messages import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES

    # An oversized message is read and answered with an error event, not a bare 1009.
    assert MAX_FRAME_BYTES > MAX_MESSAGE_BYTES


def test_trusted_proxies_are_checked_and_canonical(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().trusted_proxies == "127.0.0.1,::1"
    monkeypatch.setenv("WASTECOACH_TRUSTED_PROXIES", " 10.0.0.7/8 , fd00::1 ")
    assert Settings().trusted_proxies == "10.0.0.0/8,fd00::1"
    monkeypatch.setenv("WASTECOACH_TRUSTED_PROXIES", "*")
    assert Settings().trusted_proxies == "*"
    # uvicorn would take a typo as a host name that never matches, and trust no proxy.
    monkeypatch.setenv("WASTECOACH_TRUSTED_PROXIES", "10.0.0.0/8,lb.internal")
    with pytest.raises(ValidationError, match=r"lb\.internal"):
        Settings()


def test_guest_budget_per_address_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    accounts = Settings().accounts
    assert (accounts.guests_per_minute, accounts.guests_per_day) == (10, 100)
    monkeypatch.setenv("WASTECOACH_ACCOUNTS__GUESTS_PER_MINUTE", "2")
    assert Settings().accounts.guests_per_minute == 2


def test_request_head_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    http = Settings().http
    assert (http.head_timeout_s, http.max_unfinished_heads_per_address,
            http.max_unfinished_heads) == (10.0, 32, 1024)
    monkeypatch.setenv("WASTECOACH_HTTP__HEAD_TIMEOUT_S", "2.5")
    monkeypatch.setenv("WASTECOACH_HTTP__MAX_UNFINISHED_HEADS_PER_ADDRESS", "4")
    http = Settings().http
    assert (http.head_timeout_s, http.max_unfinished_heads_per_address) == (2.5, 4)
