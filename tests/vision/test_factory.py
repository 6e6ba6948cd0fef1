"""The vision stage as the server builds it from the settings."""

from __future__ import annotations

from pydantic import SecretStr

from server.settings import OpenAISettings, Settings
from server.vision.cache import CachedVision
from server.vision.embedded import EmbeddedClassifier
from server.vision.openai_backend import OpenAIVisionClassifier
from server.vision.stage import build as build_vision


def test_without_a_key_the_embedded_classifier_sits_behind_the_cache() -> None:
    vision = build_vision(Settings(openai=OpenAISettings()))
    assert isinstance(vision, CachedVision)
    assert isinstance(vision.inner, EmbeddedClassifier)


async def test_with_a_key_the_openai_backend_is_used() -> None:
    key = OpenAISettings(api_key=SecretStr("sk-test"), base_url="http://127.0.0.1:9/v1")
    vision = build_vision(Settings(openai=key))
    assert isinstance(vision.inner, OpenAIVisionClassifier)
    await vision.inner.aclose()
