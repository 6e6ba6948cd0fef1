"""The coaching WebSocket route."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from server.ws.connection import Connection

router = APIRouter()


@router.websocket("/api/v1/coach/ws")
async def coach_ws(websocket: WebSocket) -> None:
    state = websocket.app.state
    await Connection(
        websocket,
        state.session_deps,
        state.container.settings.session,
        state.connections,
        state.container.live,
    ).run()
