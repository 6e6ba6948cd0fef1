"""The WebSocket contract, run unchanged against embedded mode and distributed mode
(server + real Celery worker on RabbitMQ + Redis + PostgreSQL + S3 API on loopback)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from tests.conftest import Stack
from tests.support.client import CoachClient
from tests.uploads.photos import small_jpeg

pytestmark = pytest.mark.timeout(120)


def types(events: list[dict[str, object]]) -> list[object]:
    return [e["type"] for e in events]


async def test_scan_streams_in_order(client: CoachClient) -> None:
    events = await client.run_scan(location={"lat": 37.5665, "lon": 126.978})
    assert types(events) == [
        "scan.accepted",
        "scan.classified",
        "coaching.delta",
        "coaching.delta",
        "coaching.delta",
        "coaching.done",
        "bins.suggested",
        "scan.done",
    ]
    request_id = events[0]["request_id"]
    assert all(e["request_id"] == request_id for e in events)
    scan_id = events[0]["scan_id"]
    assert all(e["scan_id"] == scan_id for e in events)
    done = events[-1]
    assert done["status"] == "completed"
    assert set(done["timings_ms"]) == {"queue", "vision", "coaching", "locations"}
    coaching = events[5]
    assert coaching["text"] == "".join(e["text"] for e in events[2:5])
    assert [e["index"] for e in events[2:5]] == [0, 1, 2]
    assert events[6]["location_used"] is True


async def test_several_scans_over_one_session(client: CoachClient) -> None:
    first = await client.scan()
    second = await client.scan()
    events = []
    finished: set[str] = set()
    while finished != {first, second}:
        event = await client.recv()
        events.append(event)
        if event["type"] == "scan.done":
            finished.add(event["request_id"])
    for rid in (first, second):
        mine = [e["type"] for e in events if e.get("request_id") == rid]
        assert mine[0] == "scan.accepted" and mine[-1] == "scan.done"
        assert mine.count("coaching.delta") == 3


async def test_cancel_stops_the_scan(client: CoachClient) -> None:
    rid = await client.scan(b"SLOW")
    await client.recv_until(lambda e: e["type"] == "coaching.delta")
    await client.send({"type": "scan.cancel", "request_id": rid})
    events = await client.recv_until(lambda e: e["type"] == "scan.done")
    assert events[-1]["status"] == "cancelled"
    # Nothing more arrives for the cancelled scan.
    await client.send({"type": "ping", "request_id": "p1"})
    after = await client.recv_until(lambda e: e["type"] == "pong")
    assert [e for e in after if e.get("request_id") == rid] == []
    await asyncio.sleep(0.3)
    await client.send({"type": "ping", "request_id": "p2"})
    after = await client.recv_until(lambda e: e["type"] == "pong")
    assert [e for e in after if e.get("request_id") == rid] == []


async def test_cancel_unknown_scan_is_an_error(client: CoachClient) -> None:
    await client.send({"type": "scan.cancel", "request_id": "nope"})
    event = await client.recv()
    assert event["type"] == "error" and event["code"] == "unknown_request"


async def test_failed_stage_ends_the_scan_as_failed(client: CoachClient) -> None:
    events = await client.run_scan(b"FAIL")
    assert types(events) == ["scan.accepted", "scan.done"]
    assert events[-1]["status"] == "failed"
    assert events[-1]["error"]["code"] == "stage_failed"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": "scan.start", "request_id": "x1"}', "invalid_message"),
        ('[1, 2]', "invalid_message"),
        (
            '{"type": "scan.start", "request_id": "x2", "image": {"kind": "inline", '
            '"content_type": "image/jpeg", "data": "***"}}',
            "invalid_message",
        ),
        ("x" * 1_600_000, "message_too_large"),
        ('{"type": "session.start", "token": "again"}', "already_authenticated"),
    ],
)
async def test_bad_input_gets_an_error_and_the_session_lives_on(
    client: CoachClient, frame: str, code: str
) -> None:
    await client.send(frame)
    event = await client.recv()
    assert event["type"] == "error"
    assert event["code"] == code
    assert event["seq"] > 0
    events = await client.run_scan()
    assert events[-1]["status"] == "completed"


async def test_duplicate_request_id(client: CoachClient) -> None:
    await client.run_scan(request_id="same")
    events = await client.run_scan(request_id="same")
    assert events[-1]["type"] == "error"
    assert events[-1]["code"] == "duplicate_request"
    assert (await client.run_scan())[-1]["status"] == "completed"


async def test_resume_after_drop_loses_and_repeats_nothing(
    stack: Stack, guest_token: str
) -> None:
    c = CoachClient(stack.ws_url, guest_token)
    await c.connect()
    rid = await c.scan(b"SLOW")
    await c.recv_until(lambda e: e["type"] == "coaching.delta" and e["index"] == 2)
    seen = c.last_seq
    # The network drops: abort the TCP connection without a close handshake.
    assert c.ws is not None
    c.ws.transport.abort()
    c.ws = None
    await asyncio.sleep(0.4)  # events keep being produced meanwhile
    ready = await c.connect(resume=True)
    assert ready["type"] == "session.ready" and ready["resumed"] is True
    assert ready["last_seq"] > seen
    events = await c.recv_until(lambda e: e["type"] == "scan.done")
    # recv() already asserts seq grows by exactly one from the last seq seen.
    deltas = [e for e in c.events if e["type"] == "coaching.delta" and e["request_id"] == rid]
    assert [d["index"] for d in deltas] == list(range(20))
    assert events[-1]["status"] == "completed"
    await c.close()


async def test_resume_with_lost_history_changes_epoch(stack: Stack, guest_token: str) -> None:
    c = CoachClient(stack.ws_url, guest_token)
    first = await c.connect()
    await c.run_scan()
    await c.close()
    c.epoch = "not-the-epoch"
    ready = await c.connect(resume=True)
    assert ready["resumed"] is False
    assert ready["epoch"] != first["epoch"]
    assert ready["session_id"] != first["session_id"]
    await c.close()


async def test_resume_someone_elses_session_is_refused(stack: Stack, guest_token: str) -> None:
    c = CoachClient(stack.ws_url, guest_token)
    await c.connect()
    await c.close()
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        other = (await http.post("/api/v1/auth/guest")).json()["access_token"]
    thief = CoachClient(stack.ws_url, other, session_id=c.session_id, epoch=c.epoch)
    event = await thief.connect(resume=True)
    assert event["type"] == "error" and event["code"] == "resume_forbidden"
    assert thief.ws is not None
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await thief.ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003


@pytest.mark.parametrize(
    ("token", "code"),
    [("garbage", "auth_invalid"), ("", "invalid_message")],
)
async def test_bad_token_closes_with_4001(stack: Stack, token: str, code: str) -> None:
    async with websockets.connect(stack.ws_url) as ws:
        await ws.send(json.dumps({"type": "session.start", "token": token}))
        event = json.loads(await ws.recv())
        assert event["type"] == "error" and event["code"] == code
        if code == "auth_invalid":
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


async def test_expired_token_closes_with_4001(stack: Stack) -> None:
    services = stack.app.state.container  # type: ignore[attr-defined]
    token = services.tokens.issue_access("someone", guest=True, ttl_s=-10)
    async with websockets.connect(stack.ws_url) as ws:
        await ws.send(json.dumps({"type": "session.start", "token": token}))
        event = json.loads(await ws.recv())
        assert event["code"] == "auth_expired"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


async def test_messages_before_session_start_are_refused(stack: Stack) -> None:
    async with websockets.connect(stack.ws_url) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        event = json.loads(await ws.recv())
        assert event == {**event, "type": "error", "code": "not_authenticated", "seq": 0}


async def test_no_session_start_closes_with_4008(stack: Stack) -> None:
    async with websockets.connect(stack.ws_url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008


async def test_ping_pong(client: CoachClient) -> None:
    await client.send({"type": "ping", "request_id": "hb"})
    event = await client.recv()
    assert event["type"] == "pong" and event["request_id"] == "hb" and event["seq"] == 0


async def test_upload_then_scan_by_key(stack: Stack, client: CoachClient) -> None:
    body = small_jpeg()  # verified at first use: it must be a real image
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        auth = {"Authorization": f"Bearer {client.token}"}
        response = await http.post(
            "/api/v1/uploads", json={"content_type": "image/jpeg", "size": len(body)},
            headers=auth,
        )
        assert response.status_code == 201, response.text
        ticket = response.json()
        assert ticket["key"].startswith(f"u/{client.ready['user_id']}/")  # type: ignore[index]
        assert ticket["key"].endswith(".jpg")  # what is stored is a re-encoded JPEG
        # Scanning before the PUT: the upload is not there yet.
        events = await client.run_scan(upload_key=ticket["key"])
        assert events[-1]["code"] == "upload_not_found"
        put = await http.put(ticket["url"], content=body, headers=ticket["headers"])
        assert put.status_code in (200, 204), put.text
    events = await client.run_scan(upload_key=ticket["key"])
    assert events[-1]["type"] == "scan.done" and events[-1]["status"] == "completed"


async def test_tampered_upload_url_is_refused_with_the_upload_code(
    stack: Stack, guest_token: str
) -> None:
    if stack.mode != "embedded":
        pytest.skip("distributed mode hands out S3's own pre-signed URLs")
    body = b"\xff\xd8\xff\xe0 a small jpeg-ish body"
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.post(
            "/api/v1/uploads",
            json={"content_type": "image/jpeg", "size": len(body)},
            headers={"Authorization": f"Bearer {guest_token}"},
        )
        ticket = response.json()
        url = httpx.URL(ticket["url"])
        forged = url.copy_set_param("sig", "0" * 64)
        put = await http.put(forged, content=body, headers=ticket["headers"])
    assert put.status_code == 403
    assert put.json()["error"]["code"] == "upload_forbidden"


async def test_upload_key_of_another_user_is_refused(stack: Stack, client: CoachClient) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        other = (await http.post("/api/v1/auth/guest")).json()["access_token"]
        response = await http.post(
            "/api/v1/uploads", json={"content_type": "image/png", "size": 10},
            headers={"Authorization": f"Bearer {other}"},
        )
        key = response.json()["key"]
    events = await client.run_scan(upload_key=key)
    assert events[-1]["type"] == "error" and events[-1]["code"] == "upload_forbidden"
    assert (await client.run_scan())[-1]["status"] == "completed"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"content_type": "application/pdf", "size": 10}, 422),
        ({"content_type": "image/jpeg", "size": 10**9}, 422),
        ({"content_type": "image/jpeg", "size": 0}, 422),
    ],
)
async def test_bad_upload_requests_are_refused_with_a_reason(
    stack: Stack, guest_token: str, body: dict[str, object], status: int
) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.post(
            "/api/v1/uploads", json=body, headers={"Authorization": f"Bearer {guest_token}"}
        )
    assert response.status_code == status
    assert response.json()


async def test_upload_needs_a_token(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.post(
            "/api/v1/uploads", json={"content_type": "image/jpeg", "size": 10}
        )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth_invalid"


async def test_health_and_readiness(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["database"] == "ok"
    if stack.mode == "distributed":
        assert checks["redis"] == "ok" and checks["pubsub"] == "ok"
        assert checks["broker"] == "ok" and checks["workers"] == "ok"


async def test_scan_result_and_timings_are_persisted(stack: Stack, client: CoachClient) -> None:
    from server.db import Database
    from server.scans import repository as scans

    events = await client.run_scan(location={"lat": 37.5, "lon": 127.0})
    scan_id = events[0]["scan_id"]
    db = Database(stack.settings.sqlalchemy_url)
    try:
        async with db.session() as session:
            row = await scans.get(session, scan_id)
            assert row is not None
            assert row.status == "completed"
            assert row.user_id == client.ready["user_id"]  # type: ignore[index]
            assert row.classification is not None
            assert row.classification["stream"] == events[1]["classification"]["stream"]
            assert row.coaching_text == events[5]["text"]
            assert row.rule_ids == ["test.rule"]
            assert row.timings_ms is not None and set(row.timings_ms) == {
                "queue", "vision", "coaching", "locations"
            }
            assert (row.lat, row.lon) == (37.5, 127.0)
    finally:
        await db.dispose()


async def test_rest_validation_errors_share_the_error_shape(
    stack: Stack, guest_token: str
) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.post(
            "/api/v1/uploads", json={"content_type": "image/jpeg"},
            headers={"Authorization": f"Bearer {guest_token}"},
        )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_message" and "size" in error["message"]


async def test_auth_failure_echoes_the_request_id(stack: Stack) -> None:
    async with websockets.connect(stack.ws_url) as ws:
        await ws.send(json.dumps({"type": "session.start", "token": "x", "request_id": "s1"}))
        event = json.loads(await ws.recv())
    assert event["code"] == "auth_invalid" and event["request_id"] == "s1"


async def test_unknown_path_has_the_error_shape(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.get("/api/v1/nothing-here")
        wrong_method = await http.delete("/healthz")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert wrong_method.status_code == 405
    assert "error" in wrong_method.json()
