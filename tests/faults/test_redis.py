"""Redis faults: the event log and pub/sub go away under load, lose a session's history, or are
not there when the server starts."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.faults.harness import FaultStack, Probe, settle, summarise
from tests.faults.load import DOCUMENTED_CLOSES, Load, LoadSession, guest_tokens

pytestmark = [pytest.mark.fault]

SESSIONS = 15
DOWN_S = 5.0
#: Scans must complete again this soon after Redis is back.
RECOVERY_BOUND_S = 15.0


@pytest.mark.timeout(150)
async def test_redis_down_5s_under_load(fault_stack: FaultStack, tmp_path: Path) -> None:
    stack = fault_stack
    await asyncio.to_thread(stack.start, 1)
    health = Probe(stack.server.base_url, "/healthz").start()
    load = await Load.start(stack.server.base_url, stack.server.ws_url, SESSIONS)
    # Half the sessions run slow scans (1 s of coaching), so scans are in flight at the fault.
    for s in load.sessions[::2]:
        s.image = b"SLOW"
    await load.wait_connected()
    await asyncio.sleep(3)  # steady state: every session has scans behind it and in flight
    assert await load.wait_completions(time.time() - 60, SESSIONS, timeout=30) is not None, \
        "no scans completed before the fault"

    down_at = time.time()
    await asyncio.to_thread(stack.services.redis.stop)
    await asyncio.sleep(DOWN_S)
    await asyncio.to_thread(stack.services.redis.start)
    up_at = time.time()
    recovery = await load.wait_completions(up_at, SESSIONS, timeout=30)
    await asyncio.sleep(2)
    verdict = await settle(load, stack)
    await health.stop()

    sessions_without_new_epoch = [s.name for s in load.sessions if not s.epochs_lost]
    summarise(
        "redis_down_5s", tmp_path, verdict,
        down_s=round(up_at - down_at, 2),
        recovery_s=None if recovery is None else round(recovery, 2),
        healthz_longest_silence_s=round(health.longest_silence(), 2),
        healthz_max_latency_s=round(health.max_latency(), 2),
        healthz_failures=len(health.failures()),
        sessions_without_new_epoch=sessions_without_new_epoch,
    )
    problems = list(verdict.violations)
    if health.longest_silence() > 3.0 or health.failures():
        problems.append(f"/healthz froze: longest silence {health.longest_silence():.1f} s, "
                        f"{len(health.failures())} failed probes")
    if recovery is None or recovery > RECOVERY_BOUND_S:
        problems.append(f"{SESSIONS} scans started after Redis returned did not complete "
                        f"within {RECOVERY_BOUND_S} s (measured: {recovery})")
    if sessions_without_new_epoch:
        problems.append(f"sessions never told their history was lost (no new epoch): "
                        f"{sessions_without_new_epoch}")
    assert not problems, "\n".join(problems) + "\n" + "\n".join(
        stack.log_excerpt("Traceback") + stack.log_excerpt("ERROR"))


async def _start(url: str, token: str, resume: dict[str, object] | None = None) -> tuple[
        websockets.ClientConnection, dict[str, object]]:
    ws = await websockets.connect(url, ping_interval=None)
    start: dict[str, object] = {"type": "session.start", "token": token, "locale": "en"}
    if resume:
        start["resume"] = resume
    await ws.send(json.dumps(start))
    ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return ws, ready


def _scan(request_id: str, image: bytes = b"JPEGDATA") -> str:
    return json.dumps({"type": "scan.start", "request_id": request_id,
                       "image": {"kind": "inline", "content_type": "image/jpeg",
                                 "data": base64.b64encode(image).decode()}})


#: How soon a live client must learn that its session's history was deleted.
HISTORY_LOST_BOUND_S = 5.0


@pytest.mark.timeout(120)
async def test_history_deleted_under_live_session(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    stack = fault_stack
    await asyncio.to_thread(stack.start, 1)
    # Bystanders keep scanning: the deletion of one session must not disturb the others.
    load = await Load.start(stack.server.base_url, stack.server.ws_url, 4)
    [token] = await guest_tokens(stack.server.base_url, 1)
    victim = LoadSession(stack.server.ws_url, token, "victim")
    ready = await victim.connect()
    sid = str(ready["session_id"])
    assert victim.ws is not None
    ws = victim.ws

    await ws.send(_scan("warm"))
    events: list[dict[str, object]] = []
    while not any(e.get("type") == "scan.done" for e in events):
        events.append(json.loads(await asyncio.wait_for(ws.recv(), 15)))
    await ws.send(_scan("slow", b"SLOW"))
    while not any(e.get("type") == "coaching.delta" and e.get("request_id") == "slow"
                  for e in events):
        events.append(json.loads(await asyncio.wait_for(ws.recv(), 15)))

    deleted = await asyncio.to_thread(stack.services.redis.delete_session, sid)
    deleted_at = time.time()
    assert deleted, "the session had no keys to delete"
    close_code: int | None = None
    close_reason = ""
    closed_after: float | None = None
    after_delete: list[dict[str, object]] = []
    try:
        # A scan sent after the loss must not run where nobody will ever see it. (The close
        # may come first: the worker's next append already finds the history gone.)
        await ws.send(_scan("after"))
        while time.time() - deleted_at < 15:
            after_delete.append(json.loads(await asyncio.wait_for(ws.recv(), 1)))
    except TimeoutError:
        pass
    except ConnectionClosed as exc:
        closed_after = time.time() - deleted_at
        if exc.rcvd is not None:
            close_code, close_reason = exc.rcvd.code, exc.rcvd.reason
    else:
        pass
    # Whatever happened, a resume must now give a new epoch, and scans must work there.
    await victim._drop()
    victim.last_seq = max([int(str(e.get("seq", 0))) for e in events + after_delete] + [0])
    ready2 = await victim.connect()
    record = await victim.start_scan()
    deadline = time.time() + 20
    assert victim.ws is not None
    while record.status is None and time.time() < deadline:
        try:
            victim._on_event(await asyncio.wait_for(victim.ws.recv(), 1))
        except TimeoutError:
            continue
    await victim._drop()
    await asyncio.sleep(3)  # let the worker finish whatever it still runs
    from tests.faults.checks import db_rows
    rows = await asyncio.to_thread(db_rows, stack.services.pg, {sid})
    verdict = await settle(load, stack)

    ran_unseen = {rid: status for (s, rid), status in rows.items()
                  if s == sid and rid == "after"}
    summarise(
        "redis_history_deleted", tmp_path, verdict,
        deleted_keys=deleted, close_code=close_code, close_reason=close_reason,
        closed_after_s=None if closed_after is None else round(closed_after, 2),
        events_after_delete=[(e.get("type"), e.get("seq"), e.get("request_id"))
                             for e in after_delete],
        resumed_after=ready2["resumed"], scan_after_resume=record.status,
        old_session_rows={rid: st for (s, rid), st in rows.items() if s == sid},
    )
    problems = list(verdict.violations)
    if close_code != 1011 or closed_after is None or closed_after > HISTORY_LOST_BOUND_S:
        problems.append(
            f"expected close 1011 'history lost' within {HISTORY_LOST_BOUND_S} s of the "
            f"deletion; got code {close_code} {close_reason!r} after {closed_after} s; events "
            f"received meanwhile: {[e.get('type') for e in after_delete]}")
    if ready2["resumed"] is not False:
        problems.append(f"resume after the deletion was not a new epoch: {ready2}")
    if ran_unseen:
        problems.append(f"the scan sent after the deletion ran unseen: rows {ran_unseen}")
    if record.status != "completed":
        problems.append(f"a scan in the new epoch did not complete: {record}")
    assert not problems, "\n".join(problems)


@pytest.mark.timeout(150)
async def test_server_starts_while_redis_is_down(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    stack = fault_stack
    await asyncio.to_thread(stack.start, 1)
    # A token from before the outage: while Redis is down no guest can be made (the
    # per-address guest budget lives there; refusing is safer than minting without a limit).
    [token] = await guest_tokens(stack.server.base_url, 1)
    await asyncio.to_thread(stack.server.stop)
    await asyncio.to_thread(stack.services.redis.stop)
    problems: list[str] = []
    started = time.time()
    stack.server.start(wait_ready=False)
    try:
        await asyncio.to_thread(stack.server.wait_healthy, 60)
    except RuntimeError as exc:
        await asyncio.to_thread(stack.services.redis.start)
        pytest.fail(f"the server did not come up while Redis was down: {exc}")
    start_s = time.time() - started
    async with httpx.AsyncClient(base_url=stack.server.base_url, timeout=5) as http:
        readyz_down = await http.get("/readyz")
        if readyz_down.status_code != 503:
            problems.append(f"/readyz with Redis down: {readyz_down.status_code} "
                            f"{readyz_down.text}")
        guest = await http.post("/api/v1/auth/guest")
        if guest.status_code != 503 or "Retry-After" not in guest.headers or (
            guest.json()["error"]["code"] != "service_unavailable"
        ):
            problems.append(f"a guest with Redis down: {guest.status_code} {guest.text} "
                            "(expected 503 service_unavailable with Retry-After)")

    # A handshake while Redis is down: a documented close, not a crash.
    handshake: dict[str, object] = {}
    handshake_events: list[object] = []
    handshake["events"] = handshake_events
    try:
        ws = await asyncio.wait_for(websockets.connect(stack.server.ws_url, ping_interval=None),
                                    10)
        await ws.send(json.dumps({"type": "session.start", "token": token}))
        try:
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 15))
                handshake_events.append(event.get("type"))
        except ConnectionClosed as exc:
            handshake["code"] = exc.rcvd.code if exc.rcvd else None
            handshake["reason"] = exc.rcvd.reason if exc.rcvd else ""
        except TimeoutError:
            handshake["code"] = "no answer within 15 s"
        await ws.close()
    except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
        handshake["code"] = f"connect failed: {exc!r}"
    if handshake.get("code") not in DOCUMENTED_CLOSES:
        problems.append(f"handshake with Redis down: {handshake} (expected a documented close)")
    crashes = stack.log_excerpt("Exception in ASGI application")

    await asyncio.to_thread(stack.services.redis.start)
    up_at = time.time()
    ready_after: float | None = None
    async with httpx.AsyncClient(base_url=stack.server.base_url, timeout=3) as http:
        while time.time() - up_at < 20:
            try:
                if (await http.get("/readyz")).status_code == 200:
                    ready_after = time.time() - up_at
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.25)
    if ready_after is None:
        problems.append("/readyz did not report ready within 20 s of Redis returning")
    load = await Load.start(stack.server.base_url, stack.server.ws_url, 5)
    recovery = await load.wait_completions(up_at, 5, timeout=30)
    verdict = await settle(load, stack)
    summarise(
        "redis_down_at_server_start", tmp_path, verdict, server_start_s=round(start_s, 2),
        readyz_while_down=readyz_down.status_code, handshake_while_down=handshake,
        asgi_crashes=crashes, ready_after_s=ready_after,
        recovery_s=None if recovery is None else round(recovery, 2),
    )
    problems += verdict.violations
    if crashes:
        problems.append(f"unhandled exceptions in the server log: {crashes}")
    if recovery is None:
        problems.append("scans accepted after Redis returned did not complete within 30 s")
    assert not problems, "\n".join(problems)
