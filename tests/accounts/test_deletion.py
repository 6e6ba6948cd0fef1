"""Erasing an account on PostgreSQL and S3: no row and no stored upload of the person is left.

The server runs in distributed mode against the test PostgreSQL (migrations applied) and moto's
S3 server, reached over HTTP as AWS would be; uploads go through the real pre-signed PUT.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from server.container import Container
from tests.accounts.data import add_chat, add_scan
from tests.accounts.helpers import bearer, browser_sign_in
from tests.accounts.standin import Person, StandIn

pytestmark = pytest.mark.distributed


async def _upload(api: httpx.AsyncClient, tokens: dict[str, Any], body: bytes) -> str:
    ticket = await api.post(
        "/api/v1/uploads",
        json={"content_type": "image/jpeg", "size": len(body)},
        headers=bearer(tokens),
    )
    assert ticket.status_code == 201, ticket.text
    info = ticket.json()
    async with httpx.AsyncClient() as s3:
        put = await s3.put(info["url"], content=body, headers=info["headers"])
    assert put.status_code == 200, put.text
    key: str = info["key"]
    return key


async def _rows_of(services: Container, user_id: str) -> dict[str, int]:
    """Rows per table, for every table that has a user_id column (present and future)."""
    async with services.db.session() as session:
        tables = list(
            await session.scalars(
                text(
                    "SELECT table_name FROM information_schema.columns "
                    "WHERE column_name = 'user_id' AND table_schema = current_schema()"
                )
            )
        )
        counts = {
            table: int(
                await session.scalar(
                    text(f'SELECT count(*) FROM "{table}" WHERE user_id = :u'), {"u": user_id}
                )
                or 0
            )
            for table in tables
        }
        counts["users"] = int(
            await session.scalar(text("SELECT count(*) FROM users WHERE id = :u"), {"u": user_id})
            or 0
        )
    return counts


def _objects(services: Container, user_id: str) -> list[str]:
    """Every stored object of the user: clean copies, and raw files at their staging keys."""
    storage: Any = services.storage
    keys = []
    for prefix in (f"u/{user_id}/", f"staging/{user_id}/"):
        listed = storage._client.list_objects_v2(Bucket=storage.bucket, Prefix=prefix)
        keys += [item["Key"] for item in listed.get("Contents", [])]
    return keys


async def test_delete_account_erases_rows_and_uploads(
    distributed: tuple[FastAPI, httpx.AsyncClient], standin: StandIn
) -> None:
    app, api = distributed
    services: Container = app.state.container
    standin.person["google"] = Person("google-eraser", "Eraser")
    me = await browser_sign_in(api, "google")
    await api.post("/api/v1/auth/refresh", json={"refresh_token": me["refresh_token"]})
    standin.person["google"] = Person("google-stayer", "Stayer")
    other = await browser_sign_in(api, "google")

    keys = [await _upload(api, me, b"\xff\xd8 jpeg %d" % i) for i in range(3)]
    other_key = await _upload(api, other, b"\xff\xd8 other")
    await add_scan(services, me["user_id"], upload_key=keys[0])
    await add_scan(services, me["user_id"], stream="glass")
    await add_scan(services, other["user_id"], upload_key=other_key)
    await add_chat(services, me["user_id"], "q", "a")
    await add_chat(services, other["user_id"], "q", "a")

    before = await _rows_of(services, me["user_id"])
    assert before["scans"] == 2 and before["uploads"] == 3 and before["chat_messages"] == 2
    assert before["identities"] == 1 and before["refresh_tokens"] == 2
    # PUT and never scanned: the raw files wait at their staging keys (none is verified yet).
    assert len(_objects(services, me["user_id"])) == 3
    assert all(k.startswith("staging/") for k in _objects(services, me["user_id"]))

    response = await api.delete("/api/v1/users/me", headers=bearer(me))
    assert response.status_code == 204

    after = await _rows_of(services, me["user_id"])
    assert set(after.values()) == {0}, after
    assert _objects(services, me["user_id"]) == []

    # The other person keeps everything.
    theirs = await _rows_of(services, other["user_id"])
    assert theirs["scans"] == 1 and theirs["uploads"] == 1 and theirs["chat_messages"] == 2
    assert len(_objects(services, other["user_id"])) == 1
    scans = (await api.get("/api/v1/users/me/scans", headers=bearer(other))).json()
    assert scans["items"][0]["upload_key"] == other_key


async def test_deletion_is_repeatable(distributed: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, api = distributed
    guest = (await api.post("/api/v1/auth/guest")).json()
    await _upload(api, guest, b"\xff\xd8 g")
    assert (await api.delete("/api/v1/users/me", headers=bearer(guest))).status_code == 204
    # The token went with the account: a repeat is refused, and has nothing left to erase.
    assert (await api.delete("/api/v1/users/me", headers=bearer(guest))).status_code == 401


async def test_pg_isolation_and_flows(
    distributed: tuple[FastAPI, httpx.AsyncClient], standin: StandIn
) -> None:
    """The flows also hold on PostgreSQL: the state is single-use, refresh reuse is caught."""
    _, api = distributed
    for provider in ("kakao", "naver"):
        tokens = await browser_sign_in(api, provider)
        first = tokens["refresh_token"]
        assert (
            await api.post("/api/v1/auth/refresh", json={"refresh_token": first})
        ).status_code == 200
        replay = await api.post("/api/v1/auth/refresh", json={"refresh_token": first})
        assert replay.status_code == 401
