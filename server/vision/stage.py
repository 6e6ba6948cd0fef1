"""The vision stage, put together from the settings (``build``, called by ``server.container``).

Without an API key: the embedded classifier. With one: the OpenAI backend, falling back to the
embedded classifier. Either way behind a per-user cache of exact image bytes, so a photo the
same person sends again is answered at once. The embedded models are loaded (and their
checksums verified) here, at start up, so a damaged install fails before the first user waits
on it.
"""

from __future__ import annotations

from server.settings import Settings
from server.vision.cache import CachedVision, ImageClassifier, ResultCache
from server.vision.embedded import EmbeddedClassifier
from server.vision.openai_backend import OpenAIVisionClassifier


def build(settings: Settings, *, cache_capacity: int = 2048) -> CachedVision:
    embedded = EmbeddedClassifier()
    embedded.load()
    backend: ImageClassifier = embedded
    if settings.openai.api_key is not None:
        backend = OpenAIVisionClassifier(settings.openai, fallback=embedded)
    return CachedVision(backend, ResultCache(capacity=cache_capacity))
