"""The LLM coach: GPT-4o (or any OpenAI-compatible model) restating our rules, streamed.

The model sees the matched rules, with their ids, as the only source of truth and the vision
result as data. Its tokens are relayed as coaching deltas; rule-id citations are stripped from
the visible text and returned in the result. Any upstream failure falls back to the embedded
composer (see :mod:`server.coach.relay` for what happens when text was already streamed).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

from openai import AsyncOpenAI

from protocol.messages import Classification, Locale
from server.coach import grounding as g
from server.coach import prompts
from server.coach.composer import EmbeddedCoach, stream_sentences
from server.coach.relay import (
    EMBEDDED_BACKEND,
    LLM_BACKEND,
    MIXED_BACKEND,
    LLMOutcome,
    bridge,
    relay,
)
from server.coach.upstream import Deadlines, make_client, stream_completion
from server.contracts import CoachingResult, CoachStage, ScanInput
from server.knowledge.kb import KnowledgeBase, get_knowledge_base
from server.settings import OpenAISettings, Settings

log = logging.getLogger(__name__)


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
        injected = grounding.rule_ids
        messages = prompts.coach_messages(classification, grounding.rules, locale)
        outcome = LLMOutcome()
        upstream = stream_completion(
            self.client,
            model=self.settings.chat_model,
            messages=messages,
            deadlines=self.deadlines,
            max_tokens=self.max_tokens,
        )
        # aclosing: a consumer that stops early (scan cancelled) closes the HTTP response now,
        # not whenever the garbage collector finalises the generators.
        async with aclosing(relay(upstream, injected, outcome)) as relayed:
            async for delta in relayed:
                yield delta
        if outcome.failure is None:
            yield CoachingResult(
                text=outcome.text, rule_ids=outcome.rule_ids(injected), backend=LLM_BACKEND
            )
            return

        reason = outcome.failure.reason
        log.warning(
            "LLM coaching fell back to embedded for scan %s: %s", scan.scan_id, outcome.failure
        )
        async for event in self._fallback(classification, locale, outcome, injected, reason):
            yield event

    async def _fallback(
        self,
        classification: Classification,
        locale: Locale,
        outcome: LLMOutcome,
        injected: list[str],
        reason: str,
    ) -> AsyncIterator[str | CoachingResult]:
        sentences = self.fallback.compose(classification, locale)
        embedded_ids = g.cited(sentences)
        texts = [s.text for s in sentences]
        if not outcome.partial:
            deltas: list[str] = []
            async for delta in stream_sentences(texts):
                deltas.append(delta)
                yield delta
            yield CoachingResult(
                text="".join(deltas),
                rule_ids=embedded_ids,
                backend=EMBEDDED_BACKEND,
                fallback_reason=reason,
            )
            return
        deltas = list(outcome.deltas)
        async for delta in stream_sentences([bridge(locale), *texts], lead=" "):
            deltas.append(delta)
            yield delta
        yield CoachingResult(
            text="".join(deltas),
            rule_ids=list(dict.fromkeys([*outcome.rule_ids(injected), *embedded_ids])),
            backend=MIXED_BACKEND,
            fallback_reason=reason,
        )


def build_coach(settings: Settings, kb: KnowledgeBase | None = None) -> CoachStage:
    """The LLM coach when an API key is configured, else the embedded composer."""
    embedded = EmbeddedCoach(kb)
    if settings.openai.api_key is None:
        return embedded
    return LLMCoach(settings.openai, kb, fallback=embedded)
