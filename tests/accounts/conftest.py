"""Fixtures for accounts: stand-in providers over HTTP and the app wired to them.

The app is the real one from ``create_app`` with the users router included (the lead mounts it
in ``server/app.py``), driven in-process through httpx's ASGI transport with its lifespan run,
so its services (database, storage, tokens) are the production ones. The providers are the
stand-ins of ``standin.py``, reached over real HTTP on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from server.app import create_app
from server.auth.config import AccountsSettings, OAuthProviderSettings
from server.container import Container
from server.settings import AuthSettings, Mode, S3Settings, Settings
from tests.accounts.standin import GOOGLE_ISSUER, KAKAO_APP_ID, StandIn, StandInServer
from tests.conftest import REDIS_URL, RUN_ID, TEST_STAGES, UNLIMITED_GUESTS, free_port

BASE = "http://testserver"


@pytest.fixture(scope="session")
def standin() -> Iterator[StandIn]:
    server = StandInServer(StandIn(), free_port())
    server.start()
    yield server.standin
    server.stop()


@pytest.fixture(autouse=True)
def _reset_standin(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "standin" in request.fixturenames:
        standin: StandIn = request.getfixturevalue("standin")
        standin.fail.clear()


def accounts_for(standin: StandIn, **limits: float) -> AccountsSettings:
    url = standin.base_url

    def provider(name: str, **paths: str | None) -> OAuthProviderSettings:
        client_id, secret = standin.clients[name]
        return OAuthProviderSettings(
            client_id=client_id,
            client_secret=SecretStr(secret),
            redirect_uri=f"{BASE}/api/v1/auth/{name}/callback",
            # Generous for a local stand-in on a loaded 2-core machine (0.5 s was missed there);
            # the stand-in's "slow" mode stalls 8 s, well past it.
            timeout_s=2.0,
            **paths,  # type: ignore[arg-type]
        )

    return AccountsSettings(
        providers={
            "kakao": provider(
                "kakao",
                authorize_url=f"{url}/kakao/oauth/authorize",
                token_url=f"{url}/kakao/oauth/token",
                userinfo_url=f"{url}/kakao/v2/user/me",
                tokeninfo_url=f"{url}/kakao/v1/user/access_token_info",
                app_id=str(KAKAO_APP_ID),
            ),
            "naver": provider(
                "naver",
                authorize_url=f"{url}/naver/oauth2.0/authorize",
                token_url=f"{url}/naver/oauth2.0/token",
                userinfo_url=f"{url}/naver/v1/nid/me",
            ),
            "google": provider(
                "google",
                authorize_url=f"{url}/google/o/oauth2/v2/auth",
                token_url=f"{url}/google/token",
                jwks_url=f"{url}/google/oauth2/v3/certs",
                issuer=GOOGLE_ISSUER,
                scopes=("openid", "profile"),
            ),
        },
        # The reuse tests replay a spent token at once; the grace window that would take that
        # for a race has tests of its own, which open it.
        refresh_grace_s=0,
        **{**UNLIMITED_GUESTS, **limits},
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    from server.users.endpoints import router as users

    app = create_app(settings)
    app.include_router(users)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield app, client
        limiter = getattr(app.state, "limiter", None)
        if limiter is not None:
            await limiter.close()


def embedded_settings(tmp: Path, standin: StandIn) -> Settings:
    return Settings(
        mode=Mode.EMBEDDED,
        data_dir=tmp,
        stages_factory=TEST_STAGES,
        accounts=accounts_for(standin, scans_per_minute=3, scans_per_day=5),
    )


@pytest.fixture(scope="session")
async def embedded(
    tmp_path_factory: pytest.TempPathFactory, standin: StandIn
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Embedded mode: SQLite, local storage, in-memory limiter."""
    async with running(embedded_settings(tmp_path_factory.mktemp("acc-emb"), standin)) as pair:
        yield pair


@pytest.fixture
def api(embedded: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return embedded[1]


@pytest.fixture
def services(embedded: tuple[FastAPI, httpx.AsyncClient]) -> Container:
    app_services: Container = embedded[0].state.container
    return app_services


@pytest.fixture(scope="session")
async def distributed(
    tmp_path_factory: pytest.TempPathFactory, standin: StandIn, pg_url: str, s3_endpoint: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Distributed mode: PostgreSQL with migrations, S3 (moto over HTTP), Redis limiter."""
    settings = Settings(
        mode=Mode.DISTRIBUTED,
        data_dir=tmp_path_factory.mktemp("acc-dist"),
        database_url=pg_url,
        redis_url=REDIS_URL,
        celery_queue=f"wastecoach.test.accounts.{RUN_ID}",
        stages_factory=TEST_STAGES,
        auth=AuthSettings(jwt_secret=SecretStr("accounts-secret-" + RUN_ID), guest_enabled=True),
        s3=S3Settings(endpoint_url=s3_endpoint, bucket=f"wc-acc-{RUN_ID}"),
        accounts=accounts_for(standin),
    )
    async with running(settings) as pair:
        yield pair
