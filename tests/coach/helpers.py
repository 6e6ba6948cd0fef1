"""Builders shared by the coach tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

from pydantic import SecretStr

from protocol.messages import Alternative, Classification, Locale, OfficialCategory, Signal
from protocol.streams import OFFICIAL_PATH, Stream
from server.contracts import ScanInput
from server.settings import OpenAISettings

R = TypeVar("R")


def classification(
    label: str,
    stream: Stream,
    *,
    name_ko: str = "물건",
    name_en: str = "item",
    confidence: float = 0.92,
    contamination: str | None = None,
    parts: tuple[str, ...] = (),
    mixed: str | None = None,
    alternatives: tuple[tuple[str, Stream, float], ...] = (),
) -> Classification:
    major, middle = OFFICIAL_PATH[stream]
    return Classification(
        label=label,
        name_ko=name_ko,
        name_en=name_en,
        stream=stream,
        category=OfficialCategory(major=major, middle=middle),
        confidence=confidence,
        contamination=Signal(value=contamination, confidence=0.8) if contamination else None,
        parts=[Signal(value=p, confidence=0.8) for p in parts],
        mixed=Signal(value=mixed, confidence=0.8) if mixed else None,
        alternatives=[Alternative(label=a, stream=s, confidence=c) for a, s, c in alternatives],
        model="test",
    )


def openai_settings(base_url: str, *, first: float = 2.0, total: float = 4.0) -> OpenAISettings:
    """Settings of an LLM backend at ``base_url`` (the local SmolLM2 server, or a scripted one)."""
    return OpenAISettings(
        api_key=SecretStr("test-key"),
        base_url=base_url,
        chat_model="smollm2",
        first_token_timeout_s=first,
        timeout_s=total,
    )


def scan(locale: Locale = Locale.EN) -> ScanInput:
    return ScanInput(
        scan_id="scan-1",
        request_id="req-1",
        session_id="sess-1",
        user_id="user-1",
        locale=locale,
        image=b"",
        content_type="image/jpeg",
    )


async def drain(stream: AsyncIterator[str | R], result_type: type[R]) -> tuple[list[str], R]:
    """All deltas and the one final result; fails if the stream breaks the contract."""
    deltas: list[str] = []
    results: list[R] = []
    async for event in stream:
        if isinstance(event, result_type):
            results.append(event)
        else:
            assert not results, "a delta came after the result"
            assert isinstance(event, str)
            deltas.append(event)
    assert len(results) == 1, "exactly one result ends the stream"
    return deltas, results[0]
