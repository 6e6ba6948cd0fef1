"""The LLM coach over the OpenAI-compatible API, and its fallback to the embedded composer.

The happy path runs against a real llama-cpp-python server with SmolLM2 (started by the
``llm_server`` fixture). Failure paths use real local HTTP servers: one that never answers,
one scripted to answer 429 or to stall mid-stream, and a port nobody listens on.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach.composer import EmbeddedCoach
from server.coach.llm import LLMCoach, build_coach
from server.contracts import CoachingResult
from server.knowledge.kb import KnowledgeBase
from server.settings import OpenAISettings, Settings
from tests.coach.conftest import free_port
from tests.coach.fake_openai import Script, scripted_server
from tests.coach.helpers import classification, drain, openai_settings, scan


@pytest.fixture
async def make_coach(kb: KnowledgeBase) -> AsyncIterator[Callable[..., LLMCoach]]:
    """Builds LLM coaches and closes their connection pools after the test."""
    made: list[LLMCoach] = []

    def make(settings: OpenAISettings, **kwargs: Any) -> LLMCoach:
        coach = LLMCoach(settings, kb, **kwargs)
        made.append(coach)
        return coach

    yield make
    for coach in made:
        await coach.aclose()


BOTTLE = classification(
    "pet_bottle", Stream.CLEAR_PET, name_ko="투명 페트병", name_en="clear PET bottle"
)


async def embedded_text(kb: KnowledgeBase, locale: Locale = Locale.EN) -> CoachingResult:
    _, result = await drain(EmbeddedCoach(kb).coach(scan(locale), BOTTLE), CoachingResult)
    return result


# Deadlines against the real server are generous on purpose: a 135M model on a shared 2-core
# CI machine runs at 10-90 tokens/s depending on load. The deadline paths have their own tests.
@pytest.mark.slow
async def test_real_server_streams_grounded_coaching(
    llm_server: str, kb: KnowledgeBase, make_coach: Callable[..., LLMCoach]
) -> None:
    coach = make_coach(openai_settings(llm_server, first=120, total=240), max_tokens=40)
    deltas, result = await drain(coach.coach(scan(Locale.EN), BOTTLE), CoachingResult)
    assert result.backend == "llm", result.fallback_reason
    assert result.fallback_reason is None
    assert len(deltas) > 3, "tokens are relayed as they arrive"
    assert "".join(deltas) == result.text
    assert result.text.strip()
    # SmolLM2 may or may not cite; either way only the injected rules can be reported.
    injected = {rule.id for rule in kb.rules_for(Stream.CLEAR_PET, 123)}
    assert result.rule_ids
    assert set(result.rule_ids) <= injected
    assert "[stream." not in result.text, "citations are stripped from the visible text"


async def test_cited_ids_are_returned_and_stripped(
    kb: KnowledgeBase, make_coach: Callable[..., LLMCoach]
) -> None:
    script = Script(
        pieces=["Peel the label ", "[stream.clear_pet]", " and rinse it", " [item.bogus]."]
    )
    async with scripted_server(script) as url:
        coach = make_coach(openai_settings(url))
        _deltas, result = await drain(coach.coach(scan(Locale.EN), BOTTLE), CoachingResult)
    assert result.backend == "llm"
    assert result.rule_ids == ["stream.clear_pet"]
    assert result.text == "Peel the label and rinse it [item.bogus]."
    system = script.requests[0]["messages"][0]["content"]  # type: ignore[index]
    assert "[stream.clear_pet]" in system, "the injected rule carries its id"
    assert text_of_rule_in(system, kb)


def text_of_rule_in(system: str, kb: KnowledgeBase) -> bool:
    rule = kb.rule("stream.clear_pet")
    return rule.bin.en in system and all(step.text.en in system for step in rule.steps)


async def test_citations_only_is_empty_and_falls_back(
    kb: KnowledgeBase, make_coach: Callable[..., LLMCoach]
) -> None:
    async with scripted_server(Script(pieces=[" ", "[stream.clear_pet]", "\n"])) as url:
        coach = make_coach(openai_settings(url))
        _, result = await drain(coach.coach(scan(Locale.EN), BOTTLE), CoachingResult)
    assert (result.backend, result.fallback_reason) == ("embedded", "empty_response")
    assert result.text == (await embedded_text(kb)).text


async def test_korean_prompt_carries_korean_rules(
    kb: KnowledgeBase, make_coach: Callable[..., LLMCoach]
) -> None:
    script = Script(pieces=["라벨을 떼세요."])
    async with scripted_server(script) as url:
        coach = make_coach(openai_settings(url))
        await drain(coach.coach(scan(Locale.KO), BOTTLE), CoachingResult)
    system = script.requests[0]["messages"][0]["content"]  # type: ignore[index]
    assert "Korean" in system
    assert kb.rule("stream.clear_pet").bin.ko in system


async def test_unreachable_falls_back(
    kb: KnowledgeBase, make_coach: Callable[..., LLMCoach]
) -> None:
    coach = make_coach(openai_settings(f"http://127.0.0.1:{free_port()}/v1"))
    deltas, result = await drain(coach.coach(scan(Locale.EN), BOTTLE), CoachingResult)
    expected = await embedded_text(kb)
    assert result.backend == "embedded"
    assert result.fallback_reason == "unreachable"
    assert result.text == expected.text == "".join(deltas)
    assert result.rule_ids == expected.rule_ids


async def test_first_token_timeout_falls_back_in_time(
    silent_server: str, kb: KnowledgeBase, make_coach: Callable[..., LLMCoach]
) -> None:
    coach = make_coach(openai_settings(silent_server, first=0.5, total=10.0))
    started = time.monotonic()
    _, result = await drain(coach.coach(scan(Locale.KO), BOTTLE), CoachingResult)
    assert time.monotonic() - started < 2.0
    assert result.backend == "embedded"
    assert result.fallback_reason == "timeout"
    assert result.text == (await embedded_text(kb, Locale.KO)).text


async def test_rate_limit_falls_back(
    kb: KnowledgeBase, make_coach: Callable[..., LLMCoach]
) -> None:
    async with scripted_server(Script(status=429)) as url:
        coach = make_coach(openai_settings(url))
        _, result = await drain(coach.coach(scan(Locale.EN), BOTTLE), CoachingResult)
    assert (result.backend, result.fallback_reason) == ("embedded", "rate_limited")


async def test_upstream_error_falls_back(
    kb: KnowledgeBase, make_coach: Callable[..., LLMCoach]
) -> None:
    async with scripted_server(Script(status=503)) as url:
        coach = make_coach(openai_settings(url))
        _, result = await drain(coach.coach(scan(Locale.EN), BOTTLE), CoachingResult)
    assert (result.backend, result.fallback_reason) == ("embedded", "upstream_error")


async def test_stall_after_partial_text_finishes_with_embedded(
    kb: KnowledgeBase, make_coach: Callable[..., LLMCoach]
) -> None:
    # Sentences reach the person only once complete and checked (server.coach.relay): the
    # unfinished "and then" is held back, never shown, when the upstream stalls.
    script = Script(pieces=["Empty the bottle. ", "and then", " never mind"], stall_after=2)
    async with scripted_server(script) as url:
        coach = make_coach(openai_settings(url, first=1.0, total=1.5))
        started = time.monotonic()
        deltas, result = await drain(coach.coach(scan(Locale.EN), BOTTLE), CoachingResult)
    assert time.monotonic() - started < 4.0
    expected = await embedded_text(kb)
    assert result.backend == "llm+embedded"
    assert result.fallback_reason == "timeout"
    assert result.text == "".join(deltas)
    assert result.text.startswith("Empty the bottle. ")
    assert "and then" not in result.text
    assert result.text.endswith(expected.text), "the checked guidance follows in full"
    assert "cut off" in result.text


def test_build_coach_picks_backend_from_settings(kb: KnowledgeBase) -> None:
    assert isinstance(build_coach(Settings(), kb), EmbeddedCoach)
    with_key = Settings(openai=openai_settings("http://127.0.0.1:1/v1"))
    coach = build_coach(with_key, kb)
    assert isinstance(coach, LLMCoach)
    assert coach.client.max_retries == 0


# --------------------------------------------------------------------------- metrics


def tokens(kind: str) -> float:
    return REGISTRY.get_sample_value("wastecoach_llm_tokens_total", {"kind": kind}) or 0.0


def fallbacks(reason: str) -> float:
    return REGISTRY.get_sample_value("wastecoach_llm_fallbacks_total", {"reason": reason}) or 0.0


async def test_tokens_are_counted_from_the_reported_usage(
    kb: KnowledgeBase, make_coach: Callable[..., LLMCoach]
) -> None:
    script = Script(
        pieces=["Rinse it ", "and peel the label."],
        usage={"prompt_tokens": 412, "completion_tokens": 9},
    )
    prompt, completion = tokens("prompt"), tokens("completion")
    async with scripted_server(script) as url:
        coach = make_coach(openai_settings(url))
        _, result = await drain(coach.coach(scan(Locale.EN), BOTTLE), CoachingResult)
    assert result.backend == "llm"
    assert script.requests[0]["stream_options"] == {"include_usage": True}
    assert (tokens("prompt") - prompt, tokens("completion") - completion) == (412, 9)


async def test_without_usage_each_delta_counts_as_a_completion_token(
    kb: KnowledgeBase, make_coach: Callable[..., LLMCoach]
) -> None:
    """llama.cpp's server streams one token a chunk and reports no usage in a stream."""
    script = Script(pieces=["Rinse", " it", " and", " peel", " the", " label."])
    prompt, completion = tokens("prompt"), tokens("completion")
    async with scripted_server(script) as url:
        coach = make_coach(openai_settings(url))
        await drain(coach.coach(scan(Locale.EN), BOTTLE), CoachingResult)
    assert (tokens("prompt") - prompt, tokens("completion") - completion) == (0, 6)


async def test_a_fallback_is_counted_by_its_reason(
    kb: KnowledgeBase, make_coach: Callable[..., LLMCoach]
) -> None:
    before = fallbacks("rate_limited"), fallbacks("timeout")
    async with scripted_server(Script(status=429)) as url:
        coach = make_coach(openai_settings(url))
        await drain(coach.coach(scan(Locale.EN), BOTTLE), CoachingResult)
    assert (fallbacks("rate_limited"), fallbacks("timeout")) == (before[0] + 1, before[1])


@pytest.mark.slow
async def test_real_server_tokens_are_counted(
    llm_server: str, kb: KnowledgeBase, make_coach: Callable[..., LLMCoach]
) -> None:
    """llama-cpp-python's server (0.3.36) takes ``stream_options`` but sends no usage chunk:
    what it streams is counted, one completion token per delta, and no prompt tokens."""
    coach = make_coach(openai_settings(llm_server, first=120, total=240), max_tokens=16)
    prompt, completion = tokens("prompt"), tokens("completion")
    _, result = await drain(coach.coach(scan(Locale.EN), BOTTLE), CoachingResult)
    assert result.backend == "llm", result.fallback_reason
    assert 0 < tokens("completion") - completion <= 16
    assert tokens("prompt") == prompt
