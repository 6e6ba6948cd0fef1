"""The FastAPI application: REST routes, the coaching WebSocket, health and readiness."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from protocol.messages import ErrorCode
from server import docs
from server.container import Container
from server.db import database_unavailable
from server.errors import WasteCoachError
from server.runtime import settle_heap
from server.sessions.service import SessionDeps
from server.settings import Settings, get_settings
from server.web.page import PERMISSIONS_POLICY, is_page_path, page_csp
from server.web.page import mount as mount_page
from server.ws.endpoint import CoachSocket, routed_path
from server.ws.registry import Connections

log = logging.getLogger(__name__)


class _InvalidUtf8InOneLine(logging.Filter):
    """uvicorn logs every text frame that is not UTF-8 with a traceback (then closes 1007):
    any client could fill the log at will. One line at WARNING says the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Invalid UTF-8 sequence received from client"):
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _quiet_uvicorn() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _InvalidUtf8InOneLine) for f in logger.filters):
        logger.addFilter(_InvalidUtf8InOneLine())


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    _quiet_uvicorn()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.embedded:
            from server.bootstrap import prepare_embedded

            await prepare_embedded(settings)
        container = await Container.build(settings)
        settle_heap()
        connections = Connections(
            per_address=settings.session.max_connections_per_address,
            unauthenticated_per_address=settings.session.max_unauthenticated_per_address,
        )
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

    app = _App(
        title="Waste Coach",
        version="1.0",
        summary="Real-time coaching for household waste in Korea.",
        lifespan=lifespan,
        # FastAPI's pages load their scripts from a CDN; server.docs serves the same pages
        # from an installed package instead.
        docs_url=None,
        redoc_url=None,
    )
    app.hsts_max_age_s = settings.hsts_max_age_s
    docs.install(app)
    app.page_csp = page_csp(settings)

    @app.exception_handler(WasteCoachError)
    async def _domain_error(_: Request, exc: WasteCoachError) -> JSONResponse:
        error: dict[str, object] = {"code": exc.code.value, "message": exc.message}
        if exc.retryable:
            error["retryable"] = True
        headers = None
        if exc.retry_after_s is not None:
            headers = {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse(status_code=exc.status, content={"error": error}, headers=headers)

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

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics (``docs/operations.md``). Open like ``/healthz``: counts and
        durations under closed label sets, nothing of any user, session or request."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

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

    app.include_router(auth)
    app.include_router(uploads)
    app.include_router(locations)
    app.include_router(waste)
    app.include_router(users)
    mount_page(app)  # the reference web client at / (server/web), with its own policy
    return app


#: On every HTTP response. The API answers JSON, so the policy allows nothing to load, run or
#: frame it; a browser that is tricked into rendering a response as a page gets no script.
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: Responses that carry tokens (sign-in, refresh; a signed upload URL is one too) or a
#: person's data: no cache may keep them.
_NO_STORE_PREFIXES = ("/api/v1/auth/", "/api/v1/users/", "/api/v1/uploads")


class SecurityHeaders:
    """ASGI middleware: security headers on every HTTP response, ``Cache-Control: no-store``
    on the routes that carry tokens or personal data, and HSTS when configured.

    The page at ``/`` and its assets get the page's policy and a Permissions-Policy for the
    camera and position (see :mod:`server.web.page`). Elsewhere the policy is the API's, but on
    ``docs_paths`` (the interactive docs, see
    :mod:`server.docs`): such a page runs scripts, so it brings its own policy, which allows
    its inline script by hash, and that one is kept; without one, the API's applies.

    It wraps the whole application (see :class:`_App`), outside Starlette's error middleware,
    so the JSON 500 of an unexpected error carries the headers too.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hsts_max_age_s: int = 0,
        docs_paths: frozenset[str] = frozenset(),
        page_csp: bytes = _API_CSP,
    ) -> None:
        self.app = app
        self.page_csp = page_csp
        self.hsts = f"max-age={hsts_max_age_s}".encode() if hsts_max_age_s else None
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = routed_path(scope)
        own_policy = path in self.docs_paths
        extra = list(_SECURITY_HEADERS)
        # The page at / (server.web) runs the reference client: its own policy, and the
        # camera and position it asks for.
        base_csp = _API_CSP
        if is_page_path(path):
            base_csp = self.page_csp
            extra.append((b"permissions-policy", PERMISSIONS_POLICY))
        if self.hsts is not None:
            extra.append((b"strict-transport-security", self.hsts))
        if path.startswith(_NO_STORE_PREFIXES):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                csp = base_csp
                if own_policy:
                    csp = next(
                        (v for k, v in headers if k.lower() == b"content-security-policy"), csp
                    )
                added = [*extra, (b"content-security-policy", csp)]
                names = {name for name, _ in added}
                kept = [(k, v) for k, v in headers if k.lower() not in names]
                message = {**message, "headers": kept + added}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _App(FastAPI):
    """FastAPI with :class:`SecurityHeaders` around its whole middleware stack, and the
    coaching WebSocket dispatched before any of it (:class:`server.ws.endpoint.CoachSocket`)."""

    hsts_max_age_s: int = 0
    page_csp: bytes = _API_CSP

    def build_middleware_stack(self) -> ASGIApp:
        return CoachSocket(SecurityHeaders(
            super().build_middleware_stack(),
            hsts_max_age_s=self.hsts_max_age_s,
            docs_paths=docs.PAGES,
            page_csp=self.page_csp,
        ))


def _unavailable(message: str) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"error": {"code": ErrorCode.SERVICE_UNAVAILABLE.value, "message": message,
                           "retryable": True}},
        headers={"Retry-After": "2"},
    )
