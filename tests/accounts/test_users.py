"""``/api/v1/users/me``: profile, history, chats, stats, budget, and isolation between people."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from server.container import Container
from server.users.models import User
from tests.accounts.data import add_chat, add_scan
from tests.accounts.helpers import bearer
from tests.accounts.standin import Person, StandIn


async def _sign_in(api: httpx.AsyncClient, standin: StandIn, subject: str) -> dict[str, str]:
    token = standin.access_token_for("kakao", Person(subject, subject))
    response = await api.post("/api/v1/auth/kakao/token", json={"access_token": token})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def test_scan_history_pages_newest_first(
    api: httpx.AsyncClient, standin: StandIn, services: Container
) -> None:
    me = await _sign_in(api, standin, "history-1")
    ids = [await add_scan(services, me["user_id"], minutes_ago=m) for m in range(5, 0, -1)]
    newest_first = list(reversed(ids))

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await api.get("/api/v1/users/me/scans", params=params, headers=bearer(me))
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first

    first = (await api.get("/api/v1/users/me/scans", headers=bearer(me))).json()["items"][0]
    assert first["classification"]["stream"] == "plastic"
    assert first["coaching_text"]
    detail = await api.get(f"/api/v1/users/me/scans/{first['id']}", headers=bearer(me))
    assert detail.json()["id"] == first["id"]


async def test_bad_cursor_and_limit(api: httpx.AsyncClient, standin: StandIn) -> None:
    me = await _sign_in(api, standin, "cursor-1")
    bad = await api.get("/api/v1/users/me/scans", params={"cursor": "%%%"}, headers=bearer(me))
    assert bad.status_code == 422
    too_many = await api.get("/api/v1/users/me/scans", params={"limit": 1000}, headers=bearer(me))
    assert too_many.status_code == 422


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: Cursors a client can forge, each of which used to reach the database (or base64) and end in
#: a 500: non-ASCII text, non-ASCII bytes, a NUL (PostgreSQL refuses it in text), a date that
#: overflows when converted to UTC, numbers beyond SQLite's and PostgreSQL's integers, digits
#: that are not ASCII.
HOSTILE_CURSORS = {
    "scans": [
        "é한",
        _b64(b"\xff\xfe|abc"),
        _b64(b"2026-01-01T00:00:00+00:00|ab\x00cd"),
        _b64(b"9999-12-31T23:59:59-14:00|abc"),
        _b64(b"2026-01-01T00:00:00+00:00|"),
        _b64("2026-01-01T00:00:00+00:00|아이디".encode()),
    ],
    "chats": [
        "é한",
        _b64(b"9" * 30),
        _b64(b"99999999999"),
        _b64("²".encode()),
        _b64("١٢".encode()),
        _b64(b"-1"),
    ],
}


async def test_forged_cursors_are_422_not_500(api: httpx.AsyncClient, standin: StandIn) -> None:
    await _forged_cursors_are_refused(api, standin, "sqlite")


async def test_forged_cursors_are_422_not_500_on_postgresql(
    distributed: tuple[FastAPI, httpx.AsyncClient], standin: StandIn
) -> None:
    await _forged_cursors_are_refused(distributed[1], standin, "pg")


async def _forged_cursors_are_refused(api: httpx.AsyncClient, standin: StandIn, db: str) -> None:
    me = await _sign_in(api, standin, f"cursor-forged-{db}")
    for what, cursors in HOSTILE_CURSORS.items():
        for cursor in cursors:
            response = await api.get(
                f"/api/v1/users/me/{what}", params={"cursor": cursor}, headers=bearer(me)
            )
            assert response.status_code == 422, (what, cursor, response.text)
            assert response.json()["error"]["code"] == "invalid_message"


#: RFC 3339 ``date-time``: the offset is not optional (``Z`` or ``+09:00``).
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _times(value: object) -> list[str]:
    """Every string in a JSON document that looks like a date and time."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in _times(v)]
    if isinstance(value, list):
        return [t for v in value for t in _times(v)]
    if isinstance(value, str) and re.match(r"\d{4}-\d{2}-\d{2}[T ]\d", value):
        return [value]
    return []


async def test_every_time_in_responses_carries_an_offset(
    api: httpx.AsyncClient, standin: StandIn, services: Container
) -> None:
    """On SQLite, which stores no offset, too: every time is an RFC 3339 date-time."""
    me = await _sign_in(api, standin, "times-1")
    scan_id = await add_scan(services, me["user_id"])
    await add_scan(services, me["user_id"], minutes_ago=1)
    await add_chat(services, me["user_id"], "언제?", "지금.")
    seen: list[str] = []
    for path in ("", "/scans?limit=1", f"/scans/{scan_id}", "/chats", "/stats"):
        response = await api.get(f"/api/v1/users/me{path}", headers=bearer(me))
        assert response.status_code == 200, response.text
        seen += _times(response.json())
    # created_at of the profile, 1 scan (created, finished), the scan again, 2 chat messages,
    # and the stats' first and last scan.
    assert len(seen) == 9, seen
    for value in seen:
        assert RFC3339.fullmatch(value), value
        assert datetime.fromisoformat(value).utcoffset() == timedelta(0)


async def test_chats_and_stats(
    api: httpx.AsyncClient, standin: StandIn, services: Container
) -> None:
    me = await _sign_in(api, standin, "stats-1")
    await add_scan(services, me["user_id"], stream="plastic")
    await add_scan(services, me["user_id"], stream="plastic")
    await add_scan(services, me["user_id"], stream="paper")
    await add_scan(services, me["user_id"], status="failed")
    await add_chat(services, me["user_id"], "뚜껑은요?", "뚜껑은 따로 플라스틱으로.")

    chats = (await api.get("/api/v1/users/me/chats", headers=bearer(me))).json()
    assert [m["role"] for m in chats["items"]] == ["assistant", "user"]
    assert chats["items"][1]["content"] == "뚜껑은요?"

    stats = (await api.get("/api/v1/users/me/stats", headers=bearer(me))).json()
    assert stats["scans_total"] == 4
    assert stats["scans_by_status"] == {"completed": 3, "failed": 1}
    assert stats["items_sorted"] == 3
    assert stats["streams"] == {"plastic": 2, "paper": 1}
    assert stats["questions_asked"] == 1


async def test_two_people_see_only_their_own(
    api: httpx.AsyncClient, standin: StandIn, services: Container
) -> None:
    alice = await _sign_in(api, standin, "alice")
    bob = await _sign_in(api, standin, "bob")
    alice_scan = await add_scan(services, alice["user_id"])
    await add_chat(services, alice["user_id"], "alice's question", "answer")

    bob_scans = (await api.get("/api/v1/users/me/scans", headers=bearer(bob))).json()
    assert bob_scans["items"] == []
    bob_chats = (await api.get("/api/v1/users/me/chats", headers=bearer(bob))).json()
    assert bob_chats["items"] == []
    assert (await api.get("/api/v1/users/me/stats", headers=bearer(bob))).json()["scans_total"] == 0
    peek = await api.get(f"/api/v1/users/me/scans/{alice_scan}", headers=bearer(bob))
    assert peek.status_code == 404

    # Bob deleting his account leaves Alice's data alone.
    assert (await api.delete("/api/v1/users/me", headers=bearer(bob))).status_code == 204
    mine = (await api.get("/api/v1/users/me/scans", headers=bearer(alice))).json()
    assert [s["id"] for s in mine["items"]] == [alice_scan]


async def test_guest_sees_own_profile(api: httpx.AsyncClient) -> None:
    guest = (await api.post("/api/v1/auth/guest")).json()
    me = await api.get("/api/v1/users/me", headers=bearer(guest))
    assert me.json()["is_guest"] is True
    assert me.json()["providers"] == []


async def test_limits_are_reported_before_they_bite(
    api: httpx.AsyncClient, standin: StandIn, embedded: tuple[object, httpx.AsyncClient]
) -> None:
    from server.users.endpoints import rate_limiter

    me = await _sign_in(api, standin, "budget-1")
    before = (await api.get("/api/v1/users/me/limits", headers=bearer(me))).json()
    assert before["scan"]["remaining_minute"] == 3
    assert before["scan"]["limit_day"] == 5
    assert before["chat"]["allowed"] is True

    class _Req:
        app = embedded[0]

    limiter = rate_limiter(_Req())  # type: ignore[arg-type]
    for _ in range(3):
        assert (await limiter.hit(me["user_id"], "scan")).allowed
    after = (await api.get("/api/v1/users/me/limits", headers=bearer(me))).json()
    assert after["scan"]["allowed"] is False
    assert after["scan"]["remaining_minute"] == 0
    assert after["scan"]["remaining_day"] == 2
    assert 0 < after["scan"]["reset_s"] <= 60


async def test_deleted_account_is_gone(
    api: httpx.AsyncClient, standin: StandIn, services: Container
) -> None:
    me = await _sign_in(api, standin, "leaver")
    await add_scan(services, me["user_id"])
    await add_chat(services, me["user_id"], "q", "a")
    assert (await api.delete("/api/v1/users/me", headers=bearer(me))).status_code == 204

    # Its access token went with it (401, not a 404 answered to a token that still works).
    assert (await api.get("/api/v1/users/me", headers=bearer(me))).status_code == 401
    refresh = await api.post("/api/v1/auth/refresh", json={"refresh_token": me["refresh_token"]})
    assert refresh.status_code == 401
    async with services.db.session() as session:
        assert (
            await session.scalar(
                select(func.count()).select_from(User).where(User.id == me["user_id"])
            )
            == 0
        )
    # Signing in again with the same provider account starts a new, empty account.
    again = await _sign_in(api, standin, "leaver")
    assert again["user_id"] != me["user_id"]
    scans = (await api.get("/api/v1/users/me/scans", headers=bearer(again))).json()
    assert scans["items"] == []
