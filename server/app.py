"""The FastAPI application: REST routes, the coaching WebSocket, health and readiness."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from protocol.messages import ErrorCode
from server.container import Container
from server.db import database_unavailable
from server.errors import QuotaExceeded, WasteCoachError
from server.runtime import settle_heap
from server.sessions.service import SessionDeps
from server.settings import Settings, get_settings
from server.ws.registry import Connections

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.embedded:
            from server.bootstrap import prepare_embedded

            await prepare_embedded(settings)
        container = await Container.build(settings)
        settle_heap()
        connections = Connections()
        app.state.container = container
        app.state.connections = connections
        app.state.session_deps = SessionDeps(
            log=container.log,
            db=container.db,
            storage=container.storage,
            runner=container.runner,
            limiter=container.limiter,
            tokens=container.tokens,
        )
        app.state.db = container.db
        app.state.accounts = container.accounts
        app.state.limiter = container.limiter
        app.state.item_search = container.knowledge.search
        try:
            yield
        finally:
            await connections.drain(container.runner)
            await container.close()

    app = FastAPI(
        title="Waste Coach",
        version="1.0",
        summary="Real-time coaching for household waste in Korea.",
        lifespan=lifespan,
    )

    @app.exception_handler(WasteCoachError)
    async def _domain_error(_: Request, exc: WasteCoachError) -> JSONResponse:
        headers = None
        if isinstance(exc, QuotaExceeded):
            headers = {"Retry-After": str(math.ceil(exc.retry_after_s))}
        return JSONResponse(
            status_code=exc.status,
            content={"error": {"code": exc.code.value, "message": exc.message}},
            headers=headers,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown paths and wrong methods get the same error shape as everything else.
        code = {404: ErrorCode.NOT_FOUND, 401: ErrorCode.AUTH_INVALID, 403: ErrorCode.FORBIDDEN}
        return JSONResponse(
            status_code=exc.status_code,
            content={
                "error": {
                    "code": code.get(exc.status_code, ErrorCode.INVALID_MESSAGE).value,
                    "message": str(exc.detail),
                }
            },
            headers=getattr(exc, "headers", None),
        )

    # The database or Redis is unreachable (a restart, a failover): a JSON 503 that says to
    # retry, not a plain-text 500. Only the errors a retry can cure: a constraint violation or
    # a bad query stays a 500.
    @app.exception_handler(DBAPIError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    async def _database_away(_: Request, exc: Exception) -> JSONResponse:
        if not database_unavailable(exc):
            raise exc  # a query that can never work: the JSON 500 below, and its traceback
        log.warning("database unavailable: %s", type(getattr(exc, "orig", None) or exc).__name__)
        return _unavailable("the database is briefly unavailable; try again shortly")

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _redis_away(_: Request, exc: Exception) -> JSONResponse:
        log.warning("redis unavailable: %s", type(exc).__name__)
        return _unavailable("the service is briefly unavailable; try again shortly")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # One error shape for every 4xx: FastAPI's own {"detail": [...]} is folded into it.
        problems = [
            f"{'.'.join(str(p) for p in err['loc'][1:]) or err['loc'][0]}: {err['msg']}"
            for err in exc.errors()
        ]
        return JSONResponse(
            status_code=422,
            content={
                "error": {
                    "code": ErrorCode.INVALID_MESSAGE.value,
                    "message": "; ".join(problems) or "invalid request",
                }
            },
        )

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: what a scan needs really serves. The database answers; in distributed
        mode also Redis (the event log), the pub/sub hub's subscription, the broker
        connection, and at least one worker consuming the queue."""
        services: Container = request.app.state.container
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(2):
                async with services.db.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"failed: {type(exc).__name__}"
        if services.hub is not None:
            hub = services.hub
            checks["pubsub"] = "ok" if hub.healthy else f"failed: {hub.state} ({hub.last_error})"
            from server.events.redis import RedisEventLog

            if isinstance(services.log, RedisEventLog):
                try:
                    await asyncio.wait_for(services.log.redis.ping(), 2)
                    checks["redis"] = "ok"
                except Exception as exc:
                    checks["redis"] = f"failed: {type(exc).__name__}"
        try:
            checks.update(await asyncio.wait_for(services.runner.health(), 3))
        except Exception as exc:
            checks["broker"] = f"failed: {type(exc).__name__}"
        if request.app.state.connections.draining:
            checks["draining"] = "yes"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            status_code=200 if ready else 503,
            content={"status": "ready" if ready else "not ready", "checks": checks},
        )

    @app.exception_handler(ConnectionError)
    @app.exception_handler(TimeoutError)
    async def _unreachable(_: Request, exc: Exception) -> JSONResponse:
        # A connection refused or timed out under a request (a service restarting).
        log.warning("service unreachable: %s: %s", type(exc).__name__, exc)
        return _unavailable("the service is briefly unavailable; try again shortly")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Starlette would answer a plain-text 500; clients get the same JSON shape as every
        # other error. Starlette logs the traceback.
        return JSONResponse(
            status_code=500,
            content={"error": {"code": ErrorCode.INTERNAL.value, "message": "internal error"}},
        )

    from server.auth.endpoints import router as auth
    from server.knowledge.endpoints import router as waste
    from server.locations.endpoints import router as locations
    from server.uploads.endpoints import router as uploads
    from server.users.endpoints import router as users
    from server.ws.endpoint import router as ws

    app.include_router(auth)
    app.include_router(uploads)
    app.include_router(ws)
    app.include_router(locations)
    app.include_router(waste)
    app.include_router(users)
    return app


def _unavailable(message: str) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"error": {"code": ErrorCode.SERVICE_UNAVAILABLE.value, "message": message,
                           "retryable": True}},
        headers={"Retry-After": "2"},
    )
