"""The OpenAI-compatible streaming client: deadlines, error mapping, citation stripping.

The happy path runs against the real llama-cpp-python server (``llm_server``); failures run
against real local HTTP servers that never answer or answer with scripted errors.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from server.coach.upstream import (
    EMPTY_RESPONSE,
    RATE_LIMITED,
    TIMEOUT,
    UNREACHABLE,
    UPSTREAM_ERROR,
    CitationFilter,
    Deadlines,
    UpstreamFailure,
    make_client,
    stream_completion,
)
from server.settings import OpenAISettings
from tests.coach.conftest import free_port
from tests.coach.fake_openai import Script, scripted_server

MESSAGES = [{"role": "user", "content": "How do I recycle a glass bottle?"}]


def settings(base_url: str, *, first: float = 2.0, total: float = 5.0) -> OpenAISettings:
    return OpenAISettings(
        api_key="test-key",
        base_url=base_url,
        chat_model="test",
        first_token_timeout_s=first,
        timeout_s=total,
    )


async def collect(s: OpenAISettings) -> list[str]:
    client = make_client(s)
    try:
        return [
            d
            async for d in stream_completion(
                client,
                model=s.chat_model,
                messages=MESSAGES,
                deadlines=Deadlines.from_settings(s),
                max_tokens=24,
            )
        ]
    finally:
        await client.close()


async def failure_of(s: OpenAISettings) -> UpstreamFailure:
    with pytest.raises(UpstreamFailure) as info:
        await collect(s)
    return info.value


@pytest.mark.slow
async def test_streams_from_real_server(llm_server: str) -> None:
    deltas = await collect(settings(llm_server, first=120, total=240))
    assert len(deltas) > 1, "a streamed answer arrives in more than one delta"
    assert "".join(deltas).strip()


async def test_first_token_timeout_on_silent_server(silent_server: str) -> None:
    started = time.monotonic()
    failure = await failure_of(settings(silent_server, first=0.5, total=5.0))
    assert failure.reason == TIMEOUT
    assert time.monotonic() - started < 2.0, "the first-token deadline, not the total, fired"


async def test_unreachable_base_url() -> None:
    failure = await failure_of(settings(f"http://127.0.0.1:{free_port()}/v1"))
    assert failure.reason == UNREACHABLE


async def test_rate_limited() -> None:
    script = Script(status=429, error={"message": "slow down", "type": "rate_limit_exceeded"})
    async with scripted_server(script) as url:
        failure = await failure_of(settings(url))
    assert failure.reason == RATE_LIMITED
    assert len(script.requests) == 1, "the SDK's own retries are off"


async def test_server_error() -> None:
    async with scripted_server(Script(status=500)) as url:
        assert (await failure_of(settings(url))).reason == UPSTREAM_ERROR


async def test_total_timeout_after_partial_stream() -> None:
    script = Script(pieces=["Rinse ", "it ", "and "], stall_after=2)
    received: list[str] = []
    started = time.monotonic()
    async with scripted_server(script) as url:
        s = settings(url, first=0.5, total=1.0)
        client = make_client(s)
        with pytest.raises(UpstreamFailure) as info:
            async for delta in stream_completion(
                client, model="t", messages=MESSAGES, deadlines=Deadlines.from_settings(s)
            ):
                received.append(delta)
        await client.close()
    assert info.value.reason == TIMEOUT
    assert received == ["Rinse ", "it "]
    assert time.monotonic() - started < 3.0


async def test_empty_completion_is_a_failure() -> None:
    async with scripted_server(Script(pieces=[])) as url:
        assert (await failure_of(settings(url))).reason == EMPTY_RESPONSE


async def test_request_carries_model_and_stream_flag() -> None:
    script = Script(pieces=["ok"])
    async with scripted_server(script) as url:
        assert await collect(settings(url)) == ["ok"]
    request = script.requests[0]
    assert request["model"] == "test"
    assert request["stream"] is True
    assert request["messages"] == MESSAGES


def test_citation_filter_strips_known_ids_across_pieces() -> None:
    filt = CitationFilter(["stream.glass", "item.bottle"])
    pieces = [
        "Rinse the bottle [str",
        "eam.gla",
        "ss]. Take the cap off [item.bottle, stream.glass].",
    ]
    out = "".join(filt.feed(p) for p in pieces) + filt.flush()
    assert out == "Rinse the bottle. Take the cap off."
    assert filt.cited == ["stream.glass", "item.bottle"]


def test_citation_filter_keeps_ordinary_brackets() -> None:
    filt = CitationFilter(["stream.glass"])
    out = filt.feed("Use the bin [the green one] or [stream.paper]") + filt.flush()
    assert out == "Use the bin [the green one] or [stream.paper]"
    assert filt.cited == []


def test_citation_filter_keeps_spacing_around_mid_sentence_citation() -> None:
    filt = CitationFilter(["stream.glass"])
    out = filt.feed("Glass [stream.glass] goes in the glass bin. ") + filt.flush()
    assert out == "Glass goes in the glass bin."


def test_citation_filter_releases_unclosed_bracket() -> None:
    filt = CitationFilter(["stream.glass"])
    out = filt.feed("note [" + "x" * 100) + filt.feed(" end") + filt.flush()
    assert out == "note [" + "x" * 100 + " end"


async def test_cancellation_closes_promptly(silent_server: str) -> None:
    task = asyncio.create_task(collect(settings(silent_server, first=30, total=30)))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1.0
