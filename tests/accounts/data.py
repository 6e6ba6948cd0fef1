"""Rows a signed-in person accumulates (scans, chat turns), written the way the server does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from server.coach.repository import ChatRepository, Role
from server.container import Container
from server.scans import repository as scans


async def add_scan(
    services: Container,
    user_id: str,
    *,
    stream: str = "plastic",
    status: str = "completed",
    minutes_ago: int = 0,
    upload_key: str | None = None,
) -> str:
    scan_id = uuid.uuid4().hex
    finished = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    await scans.record_outcome(
        services.db,
        id=scan_id,
        user_id=user_id,
        session_id=f"s-{user_id[:8]}",
        request_id=scan_id,
        status=status,
        locale="ko",
        image_kind="key" if upload_key else "inline",
        upload_key=upload_key,
        classification=(
            {"label": "item", "stream": stream, "confidence": 0.9}
            if status == "completed"
            else None
        ),
        coaching_text="라벨을 떼고 헹궈서 배출하세요." if status == "completed" else None,
        rule_ids=["r1"],
        finished_at=finished,
    )
    return scan_id


async def add_chat(services: Container, user_id: str, question: str, answer: str) -> None:
    repo = ChatRepository()
    async with services.db.session() as session:
        for role, content in ((Role.USER, question), (Role.ASSISTANT, answer)):
            await repo.append(
                session,
                user_id=user_id,
                session_id=f"s-{user_id[:8]}",
                scan_id=None,
                role=role,
                content=content,
            )
