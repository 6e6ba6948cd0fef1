"""The LLM coach: GPT-4o (or any OpenAI-compatible model) restating our rules, streamed.

The model sees the matched rules, with their ids, as the only source of truth and the vision
result as data. Its tokens are relayed as coaching deltas; rule-id citations are stripped from
the visible text and returned in the result. Any upstream failure falls back to the embedded
composer (see :mod:`server.coach.relay` for what happens when text was already streamed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from openai import AsyncOpenAI

from protocol.messages import Classification
from server.coach import grounding as g
from server.coach import prompts
from server.coach.composer import EmbeddedCoach, coaching_result, scan_allowed
from server.coach.relay import Answer, stream_answer
from server.coach.upstream import Deadlines, make_client, stream_completion
from server.contracts import CoachingResult, CoachStage, ScanInput
from server.knowledge.kb import KnowledgeBase, get_knowledge_base
from server.settings import OpenAISettings, Settings


class LLMCoach:
    """Implements :class:`server.contracts.CoachStage` over an OpenAI-compatible API."""

    def __init__(
        self,
        settings: OpenAISettings,
        kb: KnowledgeBase | None = None,
        fallback: EmbeddedCoach | None = None,
        *,
        client: AsyncOpenAI | None = None,
        max_tokens: int = 320,
    ) -> None:
        self.settings = settings
        self._kb = kb
        self.fallback = fallback if fallback is not None else EmbeddedCoach(kb)
        self.client = client if client is not None else make_client(settings)
        self.deadlines = Deadlines.from_settings(settings)
        self.max_tokens = max_tokens

    async def aclose(self) -> None:
        """Close the HTTP connection pool (on shutdown)."""
        await self.client.close()

    @property
    def kb(self) -> KnowledgeBase:
        if self._kb is None:
            self._kb = get_knowledge_base()
        return self._kb

    async def coach(
        self, scan: ScanInput, classification: Classification
    ) -> AsyncIterator[str | CoachingResult]:
        locale = scan.locale
        grounding = g.ground_classification(self.kb, classification)
        upstream = stream_completion(
            self.client,
            model=self.settings.chat_model,
            messages=prompts.coach_messages(classification, grounding.rules, locale),
            deadlines=self.deadlines,
            max_tokens=self.max_tokens,
        )
        # The district's rule is said after the model's answer, as checked text.
        local = self.fallback.local_guidance(classification, locale, scan.location)
        answer = stream_answer(
            locale,
            lambda: self.fallback.compose(classification, locale),
            upstream=upstream,
            injected=grounding.rule_ids,
            label=f"LLM coaching of scan {scan.scan_id}",
            tail=local.sentences,
            allowed=scan_allowed(grounding, classification),
        )
        # aclosing: a consumer that stops early (scan cancelled) closes the HTTP response now,
        # not whenever the garbage collector finalises the generators.
        async with aclosing(answer) as events:
            async for event in events:
                yield coaching_result(event, local.district) if isinstance(event, Answer) else event


def build_coach(settings: Settings, kb: KnowledgeBase | None = None) -> CoachStage:
    """The LLM coach when an API key is configured, else the embedded composer."""
    embedded = EmbeddedCoach(kb)
    if settings.openai.api_key is None:
        return embedded
    return LLMCoach(settings.openai, kb, fallback=embedded)
