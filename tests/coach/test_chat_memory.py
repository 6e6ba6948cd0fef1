"""Persisted, bounded chat memory on SQLite (aiosqlite), and ``converse`` end to end."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from sqlalchemy import func, select

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach.chat import ChatResult, ChatService, converse
from server.coach.models import ChatMessage
from server.coach.repository import ChatRepository, Role
from server.db import Database
from server.knowledge.kb import KnowledgeBase
from server.search import ItemSearch
from tests.coach.helpers import classification, drain


class ConversationIds(NamedTuple):
    user_id: str
    session_id: str
    scan_id: str | None


PLASTIC = classification(
    "plastic", Stream.PLASTIC, name_ko="플라스틱 용기", name_en="plastic container"
)


async def count(database: Database, **where: str | None) -> int:
    async with database.session() as session:
        query = select(func.count()).select_from(ChatMessage)
        for column, value in where.items():
            attr = getattr(ChatMessage, column)
            query = query.where(attr.is_(None) if value is None else attr == value)
        return int(await session.scalar(query) or 0)


async def test_history_is_per_conversation_and_ordered(database: Database) -> None:
    repo = ChatRepository()
    async with database.session() as session:
        for scan_id in ("scan-a", "scan-b", None):
            for n in range(3):
                await repo.append(
                    session,
                    user_id="u1",
                    session_id="s1",
                    scan_id=scan_id,
                    role=Role.USER,
                    content=f"{scan_id}:{n}",
                )
        await repo.append(
            session,
            user_id="u2",
            session_id="s1",
            scan_id="scan-a",
            role=Role.USER,
            content="someone else",
        )
    async with database.session() as session:
        turns = await repo.history(
            session, user_id="u1", session_id="s1", scan_id="scan-a", limit=10
        )
        session_level = await repo.history(
            session, user_id="u1", session_id="s1", scan_id=None, limit=2
        )
    assert [t.content for t in turns] == ["scan-a:0", "scan-a:1", "scan-a:2"]
    assert [t.content for t in session_level] == ["None:1", "None:2"]


async def test_append_prunes_to_cap(database: Database) -> None:
    repo = ChatRepository(max_stored=4)
    for n in range(9):
        async with database.session() as session:
            await repo.append(
                session,
                user_id="u1",
                session_id="s1",
                scan_id="scan-a",
                role=Role.USER,
                content=str(n),
            )
    async with database.session() as session:
        await repo.append(
            session,
            user_id="u1",
            session_id="s1",
            scan_id="scan-b",
            role=Role.USER,
            content="other",
        )
        turns = await repo.history(
            session, user_id="u1", session_id="s1", scan_id="scan-a", limit=100
        )
    assert [t.content for t in turns] == ["5", "6", "7", "8"]
    assert await count(database, scan_id="scan-a") == 4
    assert await count(database, scan_id="scan-b") == 1, "pruning stays within a conversation"


def test_cap_must_hold_a_question_and_answer() -> None:
    with pytest.raises(ValueError):
        ChatRepository(max_stored=1)


async def test_converse_remembers_the_item_across_turns(
    database: Database, kb: KnowledgeBase, item_search: ItemSearch
) -> None:
    chat = ChatService(kb, item_search)
    ids = ConversationIds(user_id="u1", session_id="s1", scan_id=None)
    _, first = await drain(
        converse(
            database,
            chat,
            question="how do I throw away a plastic container?",
            locale=Locale.EN,
            scan_context=None,
            **ids._asdict(),
        ),
        ChatResult,
    )
    assert first.item_ids, "the first answer is about a known item"
    # No scan and no item named: "it" is resolved from the stored conversation.
    _, second = await drain(
        converse(
            database,
            chat,
            question="what if it is greasy?",
            locale=Locale.EN,
            scan_context=None,
            **ids._asdict(),
        ),
        ChatResult,
    )
    assert second.item_ids == first.item_ids[:1]
    async with database.session() as session:
        turns = await ChatRepository().history(session, limit=10, **ids._asdict())
    assert [t.role for t in turns] == [Role.USER, Role.ASSISTANT, Role.USER, Role.ASSISTANT]
    assert turns[-1].content == second.text
    assert list(turns[-1].rule_ids) == second.rule_ids


async def test_converse_keeps_scans_apart(
    database: Database, kb: KnowledgeBase, item_search: ItemSearch
) -> None:
    chat = ChatService(kb, item_search)
    await drain(
        converse(
            database,
            chat,
            user_id="u1",
            session_id="s1",
            scan_id="scan-1",
            question="what if it is greasy?",
            locale=Locale.EN,
            scan_context=PLASTIC,
        ),
        ChatResult,
    )
    assert await count(database, scan_id="scan-1") == 2
    assert await count(database, scan_id="scan-2") == 0


async def test_prompt_history_is_bounded(
    database: Database, kb: KnowledgeBase, item_search: ItemSearch
) -> None:
    chat = ChatService(kb, item_search, history_turns=4)
    seen: list[int] = []
    original = chat.answer

    def spy(**kwargs):  # type: ignore[no-untyped-def]
        seen.append(len(kwargs["history"]))
        return original(**kwargs)

    chat.answer = spy  # type: ignore[method-assign]
    for _ in range(4):
        await drain(
            converse(
                database,
                chat,
                user_id="u1",
                session_id="s1",
                scan_id="scan-1",
                question="why?",
                locale=Locale.EN,
                scan_context=PLASTIC,
            ),
            ChatResult,
        )
    assert seen == [0, 2, 4, 4]
