"""The coaching WebSocket's entry: an ASGI layer that hands ``/api/v1/coach/ws`` straight to a
:class:`~server.ws.connection.Connection`, in front of FastAPI's routing and middleware.

Why not a FastAPI route: a WebSocket stays inside every layer it passed through for its whole
life. Through Starlette's error and exception middleware, FastAPI's exit-stack middleware, the
router and the route's dependency solver, an idle socket held about 10 KiB of coroutine frames,
``AsyncExitStack``\\ s and scope copies (docs/benchmarks.md, "Idle sessions"). None of those
layers does anything for this socket: the security headers and the JSON error pages are for
HTTP responses, the route has no dependencies, and :class:`Connection` handles its own errors
(a bug closes 1011 with a log line). What applies to a WebSocket is in the connection itself
(per-address caps, sign-in, rate limits) and in uvicorn's protocol (the inbound budget,
``server.ws_inbound``), both of which sit on either side of this layer, unchanged.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from server.ws.connection import Connection

PATH = "/api/v1/coach/ws"


def routed_path(scope: Scope) -> str:
    """The path as the application routes it: behind a proxy that strips a prefix (ASGI
    ``root_path``), the server's ``path`` still carries it."""
    path: str = scope["path"]
    root = scope.get("root_path", "").rstrip("/")
    if root and path.startswith(f"{root}/"):
        return path[len(root):]
    return path


async def coach_ws(websocket: WebSocket) -> None:
    state = websocket.app.state
    await Connection(
        websocket,
        state.session_deps,
        state.container.settings.session,
        state.connections,
        state.container.live,
    ).run()


class CoachSocket:
    """ASGI layer: WebSocket scopes for :data:`PATH` go to :func:`coach_ws`, everything else
    (HTTP, lifespan, other WebSocket paths, which the router refuses) to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and routed_path(scope) == PATH:
            await coach_ws(WebSocket(scope, receive, send))
            return
        await self.app(scope, receive, send)
