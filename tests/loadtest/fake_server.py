"""A misbehaving Waste Coach server, for the harness's bad-input tests.

The real server never sends a malformed event nor refuses a guest while saying it is healthy
on purpose, so these cases need a stand-in. It speaks the documented REST and WebSocket
protocol (docs/protocol.md) over real HTTP on loopback, built from the protocol's own models,
and misbehaves in one way chosen by ``behaviour``:

* ``refuse``: ``POST /api/v1/auth/guest`` answers 403 ``forbidden`` (guest sign-in off);
* ``malformed``: every ``scan.start`` gets a valid ``scan.accepted``, then a ``scan.classified``
  without its classification;
* ``close``: the first ``scan.start`` gets ``scan.accepted``, then the socket closes with 1012
  (server restart), and every later connection is closed with 1012 at once, as a draining
  server does: the server never comes back;
* ``busy``: the first two connections are closed with 1013 at once (too many connections from
  the address), as a real server does at its per-address cap; later ones are served, and
  ``ping`` gets its ``pong``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol.messages import Pong, ScanAccepted, SessionReady, client_message_adapter
from tests.conftest import free_port


def build_app(behaviour: str) -> Starlette:
    state: dict[str, int] = {"closed": 0, "turned_away": 0}

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def guest(_: Request) -> JSONResponse:
        if behaviour == "refuse":
            return JSONResponse(
                {"error": {"code": "forbidden",
                           "message": "guest login is disabled on this server"}},
                status_code=403,
            )
        return JSONResponse({"access_token": "t-" + uuid.uuid4().hex, "token_type": "bearer",
                             "expires_in": 900, "user_id": uuid.uuid4().hex}, status_code=201)

    async def coach(ws: WebSocket) -> None:
        await ws.accept()
        if state["closed"]:
            await ws.close(1012, "server is restarting")
            return
        if behaviour == "busy" and state["turned_away"] < 2:
            state["turned_away"] += 1
            await ws.close(1013, "too many connections from your address; try again later")
            return
        try:
            client_message_adapter.validate_json(await ws.receive_text())  # session.start
            ready = SessionReady(
                session_id=uuid.uuid4().hex, epoch=uuid.uuid4().hex, resumed=False,
                last_seq=0, user_id="u", heartbeat_interval_s=25.0,
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
            await ws.send_text(ready.model_dump_json())
            seq = 0
            while True:
                message = client_message_adapter.validate_json(await ws.receive_text())
                if message.type == "ping":
                    await ws.send_text(Pong(request_id=message.request_id).model_dump_json())
                if message.type != "scan.start":
                    continue
                seq += 1
                accepted = ScanAccepted(seq=seq, request_id=message.request_id, scan_id="x" * 32)
                await ws.send_text(accepted.model_dump_json())
                if behaviour == "malformed":
                    seq += 1
                    await ws.send_text(json.dumps({
                        "type": "scan.classified", "seq": seq, "request_id": message.request_id,
                        "ts": "2026-01-01T00:00:00Z", "scan_id": "x" * 32,
                    }))
                elif behaviour == "close":
                    state["closed"] = 1
                    await ws.close(1012, "server is restarting")
                    return
        except WebSocketDisconnect:
            return

    return Starlette(routes=[
        Route("/healthz", healthz),
        Route("/api/v1/auth/guest", guest, methods=["POST"]),
        WebSocketRoute("/api/v1/coach/ws", coach),
    ])


class FakeServer:
    """The app above under uvicorn, in a thread of the test process, on a free port."""

    def __init__(self, behaviour: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(build_app(behaviour), host="127.0.0.1", port=self.port,
                                log_level="warning", ws_per_message_deflate=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
