"""Guest accounts are limited per client address, so per-user budgets cannot be escaped by
minting users (issue 13: a probe made 1,000 guests in 2.4 s).

The app is the real one, wrapped the way ``wastecoach serve`` runs it (``server_config``:
uvicorn's proxy-headers middleware with the trusted-proxy setting), driven through httpx's ASGI
transport with the client address a socket would report.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import func, select

from server.app import create_app
from server.auth.config import AccountsSettings
from server.cli import server_config
from server.container import Container
from server.limits import address_key
from server.settings import AuthSettings, Mode, S3Settings, Settings
from server.users.models import User
from tests.conftest import REDIS_URL, RUN_ID, TEST_STAGES

pytestmark = pytest.mark.timeout(60)

PER_ADDRESS = 3
GUEST = "/api/v1/auth/guest"


def _settings(tmp: Path, **extra: object) -> Settings:
    # Minute and day budgets equal: the refusal does not depend on a minute boundary falling
    # inside the test.
    values: dict[str, object] = {
        "mode": Mode.EMBEDDED,
        "data_dir": tmp,
        "stages_factory": TEST_STAGES,
        "trusted_proxies": "10.0.0.0/8",
        "accounts": AccountsSettings(guests_per_minute=PER_ADDRESS, guests_per_day=PER_ADDRESS),
    }
    return Settings(**{**values, **extra})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    made = create_app(_settings(tmp_path_factory.mktemp("guests")))
    async with made.router.lifespan_context(made):
        yield made


def _client(app: FastAPI, peer: str) -> httpx.AsyncClient:
    """A client whose TCP peer address is ``peer``, through what ``serve`` puts before the app."""
    config = server_config(app.state.container.settings, app)
    config.load()
    transport = httpx.ASGITransport(app=config.loaded_app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _users(app: FastAPI) -> int:
    services: Container = app.state.container
    async with services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def test_a_burst_from_one_address_gets_its_budget_and_then_429(app: FastAPI) -> None:
    before = await _users(app)
    async with _client(app, "198.51.100.1") as http:
        answers = await asyncio.gather(*(http.post(GUEST) for _ in range(50)))
    created = [a for a in answers if a.status_code == 201]
    refused = [a for a in answers if a.status_code != 201]
    assert len(created) == PER_ADDRESS
    assert await _users(app) == before + PER_ADDRESS  # a refused request creates nothing
    for answer in refused:
        assert answer.status_code == 429
        retry_after = int(answer.headers["Retry-After"])
        assert 1 <= retry_after <= 24 * 3600
        error = answer.json()["error"]
        assert error["code"] == "rate_limited" and error["retryable"] is True
        assert f"{retry_after} s" in error["message"]
    # Another address has its own budget.
    async with _client(app, "198.51.100.2") as http:
        assert (await http.post(GUEST)).status_code == 201


async def test_an_ipv6_client_counts_by_its_64(app: FastAPI) -> None:
    # Every address of one /64 is one subscriber: hopping between them gains nothing.
    for i in range(PER_ADDRESS):
        async with _client(app, f"2001:db8:1:2::{i + 1:x}") as http:
            assert (await http.post(GUEST)).status_code == 201
    async with _client(app, "2001:db8:1:2:ffff:ffff:ffff:ffff") as http:
        assert (await http.post(GUEST)).status_code == 429
    async with _client(app, "2001:db8:1:3::1") as http:
        assert (await http.post(GUEST)).status_code == 201


def test_address_keys() -> None:
    assert address_key("198.51.100.7") == "198.51.100.7"
    assert address_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert address_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert address_key(None) == "unknown"
    assert address_key("x" * 500) == "x" * 64


async def test_forwarded_for_counts_only_from_a_trusted_proxy(app: FastAPI) -> None:
    # Through the load balancer (10.0.0.0/8 is trusted): the forwarded address is counted.
    async with _client(app, "10.1.2.3") as balancer:
        for _ in range(PER_ADDRESS):
            sent = await balancer.post(GUEST, headers={"X-Forwarded-For": "198.51.100.30"})
            assert sent.status_code == 201
        over = await balancer.post(GUEST, headers={"X-Forwarded-For": "198.51.100.30"})
        assert over.status_code == 429
        # A client cannot prepend an address of its choosing: the balancer appends the real
        # one, and the last untrusted address is the one counted.
        spoofed = await balancer.post(
            GUEST, headers={"X-Forwarded-For": "192.0.2.99, 198.51.100.30"}
        )
        assert spoofed.status_code == 429
        # Another client behind the same balancer is not affected.
        other = await balancer.post(GUEST, headers={"X-Forwarded-For": "198.51.100.31"})
        assert other.status_code == 201
    # A client that is not a trusted proxy is counted by its own address, whatever it claims.
    async with _client(app, "192.0.2.77") as direct:
        for i in range(PER_ADDRESS):
            claimed = {"X-Forwarded-For": f"198.51.100.{40 + i}"}
            assert (await direct.post(GUEST, headers=claimed)).status_code == 201
        claimed = {"X-Forwarded-For": "198.51.100.50"}
        assert (await direct.post(GUEST, headers=claimed)).status_code == 429


def test_serve_trusts_the_configured_proxies(tmp_path: Path) -> None:
    settings = _settings(tmp_path, trusted_proxies="10.0.0.1/8, 192.0.2.1")
    config = server_config(settings, FastAPI())
    assert config.proxy_headers is True
    assert config.forwarded_allow_ips == "10.0.0.0/8,192.0.2.1"


async def test_disabled_guest_login_counts_nothing(tmp_path: Path) -> None:
    made = create_app(_settings(tmp_path, auth=AuthSettings(guest_enabled=False)))
    async with made.router.lifespan_context(made):
        async with _client(made, "198.51.100.60") as http:
            for _ in range(PER_ADDRESS + 1):
                assert (await http.post(GUEST)).status_code == 403
        budget = await made.state.container.limiter.peek("198.51.100.60", "guest")
        assert budget.remaining_minute == PER_ADDRESS


async def test_distributed_servers_share_one_budget_per_address(
    tmp_path: Path, pg_url: str, s3_endpoint: str
) -> None:
    """Two server processes' worth of apps on the same Redis: the address's budget is one."""
    settings = _settings(tmp_path).model_copy(
        update={
            "mode": Mode.DISTRIBUTED,
            "database_url": pg_url,
            "redis_url": REDIS_URL,
            "celery_queue": f"wastecoach.test.guests.{RUN_ID}",
            "auth": AuthSettings(jwt_secret=SecretStr("guests-" + RUN_ID), guest_enabled=True),
            "s3": S3Settings(endpoint_url=s3_endpoint, bucket=f"wc-guests-{RUN_ID}"),
        }
    )
    # The budget lives in the shared Redis for a day: an address of this run's own /64.
    tag = uuid.uuid4().hex
    peer = f"2001:db8:{tag[:4]}:{tag[4:8]}::1"
    first, second = create_app(settings), create_app(settings)
    async with (
        first.router.lifespan_context(first),
        second.router.lifespan_context(second),
        _client(first, peer) as a,
        _client(second, peer) as b,
    ):
        codes = [(await (a if i % 2 else b).post(GUEST)).status_code for i in range(5)]
    assert codes == [201] * PER_ADDRESS + [429] * 2
