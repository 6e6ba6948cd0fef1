"""The chat stage (follow-up questions), put together from the settings (``build``, called by
``server.container``): :class:`~server.coach.chat.ChatService` answers, and the conversation's
memory is read from and written to the database around each answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

from server.coach.chat import ChatService, converse
from server.contracts import ChatQuestion, ChatResult
from server.db import Database
from server.knowledge.kb import KnowledgeBase
from server.regions.districts import DistrictIndex
from server.search import ItemSearch
from server.settings import Settings


class ChatStage:
    """Implements :class:`server.contracts.ChatStage`."""

    def __init__(self, service: ChatService, db: Database) -> None:
        self.service = service
        self._db = db

    def converse(self, question: ChatQuestion) -> AsyncIterator[str | ChatResult]:
        return converse(
            self._db,
            self.service,
            user_id=question.user_id,
            session_id=question.session_id,
            scan_id=question.scan_id,
            question=question.text,
            locale=question.locale,
            scan_context=question.scan_context,
            location=question.location,
        )

    async def aclose(self) -> None:
        await self.service.aclose()


def build(
    settings: Settings,
    kb: KnowledgeBase,
    search: ItemSearch,
    db: Database,
    districts: DistrictIndex | None = None,
) -> ChatStage:
    service = ChatService(settings=settings.openai, kb=kb, search=search, districts=districts)
    return ChatStage(service, db)
