"""Clarify, follow-up chat and token refresh over the WebSocket, in both modes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import websockets

from tests.conftest import Stack, new_guest
from tests.support.client import CoachClient

pytestmark = pytest.mark.timeout(120)


async def test_unsure_scan_asks_and_continues_with_the_answer(client: CoachClient) -> None:
    rid = await client.scan(b"UNSURE")
    events = await client.recv_until(lambda e: e["type"] == "scan.clarify")
    assert [e["type"] for e in events] == ["scan.accepted", "scan.classified", "scan.clarify"]
    clarify = events[-1]
    assert clarify["request_id"] == rid
    assert [c["label"] for c in clarify["choices"]] == ["glass_bottle", "pet_bottle"]
    await client.send({"type": "scan.clarify.answer", "request_id": rid, "choice": "nope"})
    error = await client.recv()
    assert error["type"] == "error" and error["code"] == "invalid_choice"
    await client.send({"type": "scan.clarify.answer", "request_id": rid, "choice": "pet_bottle"})
    events = await client.recv_until(lambda e: e["type"] == "scan.done")
    confirmed = events[0]
    assert confirmed["type"] == "scan.classified"
    assert confirmed["classification"]["confirmed"] is True
    assert confirmed["classification"]["label"] == "pet_bottle"
    assert confirmed["classification"]["stream"] == "clear_pet"
    assert events[-1]["status"] == "completed"
    assert "coaching.done" in [e["type"] for e in events]


async def test_clarify_answer_for_unknown_scan(client: CoachClient) -> None:
    await client.send({"type": "scan.clarify.answer", "request_id": "ghost", "choice": "x"})
    event = await client.recv()
    assert event["type"] == "error" and event["code"] == "unknown_request"


async def test_follow_up_chat_streams_an_answer(client: CoachClient) -> None:
    await client.send({"type": "chat.message", "request_id": "c1", "locale": "en",
                       "text": "Where does a chicken bone go?"})
    events = await client.recv_until(lambda e: e["type"] == "chat.done")
    deltas = [e for e in events if e["type"] == "chat.delta"]
    done = events[-1]
    assert deltas and [d["index"] for d in deltas] == list(range(len(deltas)))
    assert done["text"] == "".join(d["text"] for d in deltas)
    assert done["outcome"] == "answered"
    assert done["rule_ids"]
    assert "general" in done["text"].lower()
    await client.send({"type": "chat.message", "request_id": "c1", "text": "again"})
    error = await client.recv()
    assert error["type"] == "error" and error["code"] == "duplicate_request"
    # chat.done frees the slot: more questions than the concurrency cap, one after another.
    for n in range(3):
        await client.send({"type": "chat.message", "request_id": f"more{n}", "locale": "en",
                           "text": "and a receipt?"})
        done = await client.recv_until(lambda e: e["type"] in ("chat.done", "error"))
        assert done[-1]["type"] == "chat.done", done[-1]


async def test_chat_about_a_scan_remembers_it(client: CoachClient) -> None:
    scan = await client.run_scan()
    scan_id = scan[0]["scan_id"]
    await client.send({"type": "chat.message", "request_id": "c2", "locale": "en",
                       "scan_id": scan_id, "text": "what do I do with the label?"})
    events = await client.recv_until(lambda e: e["type"] == "chat.done")
    assert events[-1]["scan_id"] == scan_id
    assert events[-1]["outcome"] == "answered"


async def test_token_refresh_keeps_the_session(stack: Stack) -> None:
    services = stack.app.state.container  # type: ignore[attr-defined]
    user = (await new_guest(stack))["user_id"]
    c = CoachClient(stack.ws_url, services.tokens.issue_access(user, guest=True, ttl_s=4))
    await c.connect()
    warning = await c.recv(timeout=5)
    assert warning["type"] == "auth.expiring"
    # Warned half way through a short token's life, not at the last second.
    remaining = datetime.fromisoformat(warning["expires_at"]) - datetime.now(UTC)
    assert remaining.total_seconds() > 1.2
    fresh = services.tokens.issue_access(user, guest=True, ttl_s=600)
    await c.send({"type": "auth.refresh", "request_id": "a1", "token": fresh})
    refreshed = await c.recv()
    assert refreshed["type"] == "auth.refreshed" and refreshed["request_id"] == "a1"
    await asyncio.sleep(2.5)  # past the first token's expiry
    await c.send({"type": "ping", "request_id": "still-here"})
    assert (await c.recv())["type"] == "pong"
    other = services.tokens.issue_access((await new_guest(stack))["user_id"], guest=True)
    await c.send({"type": "auth.refresh", "request_id": "a2", "token": other})
    error = await c.recv()
    assert error["type"] == "error" and error["code"] == "auth_invalid"
    await c.close()


async def test_unrefreshed_token_closes_with_4001(stack: Stack) -> None:
    services = stack.app.state.container  # type: ignore[attr-defined]
    token = services.tokens.issue_access((await new_guest(stack))["user_id"], guest=True, ttl_s=2)
    c = CoachClient(stack.ws_url, token)
    await c.connect()
    assert c.ws is not None
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(c.ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
