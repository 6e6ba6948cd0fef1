"""Deleting an account revokes its tokens at once: REST, session.start, auth.refresh, open
WebSocket connections, and the chat path, which stores nothing for an erased account."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
import websockets
from sqlalchemy import delete, event, func, select

from protocol.messages import Locale
from server.auth.revocation import ACCOUNT_GONE, ensure_account_still_exists
from server.auth.tokens import Claims
from server.coach.chat import ChatResult, ChatService, converse
from server.coach.models import ChatMessage
from server.container import Container
from server.errors import AuthError
from server.users.models import User
from tests.accounts.helpers import bearer
from tests.conftest import Stack
from tests.support.client import CoachClient
from tests.support.db import a_user


async def test_rest_answers_401_after_deletion(api: httpx.AsyncClient) -> None:
    guest: dict[str, Any] = (await api.post("/api/v1/auth/guest")).json()
    assert (await api.get("/api/v1/users/me", headers=bearer(guest))).status_code == 200
    assert (await api.delete("/api/v1/users/me", headers=bearer(guest))).status_code == 204
    me = await api.get("/api/v1/users/me", headers=bearer(guest))
    assert me.status_code == 401 and me.json()["error"]["code"] == "auth_invalid", me.text
    upload = await api.post(
        "/api/v1/uploads", json={"content_type": "image/jpeg", "size": 10}, headers=bearer(guest)
    )
    assert upload.status_code == 401, upload.text
    # Deleting again: the token is gone with the account.
    assert (await api.delete("/api/v1/users/me", headers=bearer(guest))).status_code == 401


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
@pytest.mark.timeout(60)
async def test_websocket_is_closed_and_refused_after_deletion(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        guest = (await http.post("/api/v1/auth/guest")).json()
        client = CoachClient(stack.ws_url, guest["access_token"])
        assert (await client.connect())["type"] == "session.ready"
        assert client.ws is not None
        deleted = await http.delete("/api/v1/users/me", headers=bearer(guest))
        assert deleted.status_code == 204
        # The open connection closes at once (same process), with 4001.
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(client.ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    # A new connection with the same token is refused.
    async with websockets.connect(stack.ws_url) as ws:
        await ws.send(json.dumps({"type": "session.start", "token": guest["access_token"]}))
        event = json.loads(await ws.recv())
        assert event["type"] == "error" and event["code"] == "auth_invalid"
        assert "deleted" in event["message"]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


class _OneAnswer:
    """Stands in for the chat service: the storing, not the answering, is under test."""

    history_turns = 4

    async def answer(self, **_: object) -> AsyncIterator[str | ChatResult]:
        yield "hi"
        yield ChatResult(text="hi")


async def test_no_chat_is_stored_for_an_erased_account(services: Container) -> None:
    async for _ in converse(
        services.db, cast(ChatService, _OneAnswer()), user_id="erased-user", session_id="s",
        scan_id=None, question="q?", locale=Locale.EN, scan_context=None,
    ):
        pass
    async with services.db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(ChatMessage).where(
                ChatMessage.user_id == "erased-user"
            )
        )
    assert count == 0


async def test_keep_alive_checks_waiting_together_are_one_query_with_each_its_answer(
    services: Container,
) -> None:
    """At 10,000 open sessions each keep-alive asking on its own was hundreds of queries a
    second: checks asked at the same moment share one query, and each still gets its own
    account's answer."""
    db = services.db
    kept, erased = await a_user(db), await a_user(db)
    async with db.session() as session:
        await session.execute(delete(User).where(User.id == erased))
    queries: list[str] = []

    def count(*args: Any) -> None:
        statement: str = args[2]
        if "FROM users" in statement:
            queries.append(statement)

    listen = db.engine.sync_engine
    event.listen(listen, "before_cursor_execute", count)
    try:
        users = [kept, erased, "never-existed"] * 10
        results = await asyncio.gather(
            *(ensure_account_still_exists(db, _claims(user)) for user in users),
            return_exceptions=True,
        )
    finally:
        event.remove(listen, "before_cursor_execute", count)
    for user, result in zip(users, results, strict=True):
        if user == kept:
            assert result is None
        else:
            assert isinstance(result, AuthError) and result.message == ACCOUNT_GONE, result
    assert len(queries) == 1, queries
    # A later check asks again: nothing is cached.
    async with db.session() as session:
        await session.execute(delete(User).where(User.id == kept))
    with pytest.raises(AuthError):
        await ensure_account_still_exists(db, _claims(kept))


def _claims(user_id: str) -> Claims:
    return Claims(user_id=user_id, expires_at=0.0, token_id="t", guest=True)
