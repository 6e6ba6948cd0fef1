"""Answer a photo this user sent before without classifying it again.

The key is the user and the SHA-256 of the image bytes, and nothing looser:

* Per user, because a cache shared between people answers one person with what another's
  photo was classified as: one user could plant labels for others, and the speed of a hit
  tells whether someone else scanned a similar photo.
* By exact content, not by perceptual hash. The cache used to match a 64-bit difference hash
  within 4 bits so that a re-taken frame of the same item would hit; on the TrashNet photos
  that radius joins 243 pairs of different classes (a cardboard box answered as a metal can),
  and some cardboard and paper photos share a dHash exactly, so no radius is safe even for one
  person's own frames. A re-taken frame now costs a classification; a wrong answer from the
  cache cost the person a wrong disposal instruction.

What still hits is what matters for cost: the same bytes sent again by the same person (a retry
after a failed or cancelled scan, a resend after a reconnect, the same upload scanned twice).

The cache is in-process and bounded (least recently used goes first).

It is also where a scan's photo is decoded, once: a photo not answered from the cache is
decoded here (garbage is refused before any backend sees it) and the backend is handed the
decoded image, as is the OpenAI backend's fallback. (Each used to decode the bytes again, so a
large PNG was decoded twice per scan, three times when OpenAI failed.)
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict
from typing import Protocol

from protocol.messages import Classification
from server.contracts import ScanInput
from server.vision.images import DecodedImage, decode_image

#: (user id, SHA-256 of the image bytes)
CacheKey = tuple[str, bytes]


def cache_key(scan: ScanInput) -> CacheKey:
    return scan.user_id, hashlib.sha256(scan.image).digest()


class ResultCache:
    """Bounded LRU from (user, content hash) to classification, thread-safe."""

    def __init__(self, capacity: int = 2048) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._entries: OrderedDict[CacheKey, Classification] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> Classification | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: CacheKey, value: Classification) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


class ImageClassifier(Protocol):
    """A vision backend handed the scan's photo already decoded (by :class:`CachedVision`)."""

    async def classify_image(self, scan: ScanInput, decoded: DecodedImage) -> Classification: ...


class CachedVision:
    """A :class:`~server.contracts.VisionStage` that decodes a photo this user has not sent
    before, once, and asks ``inner`` about it."""

    def __init__(self, inner: ImageClassifier, cache: ResultCache | None = None) -> None:
        self.inner = inner
        self.cache = cache if cache is not None else ResultCache()

    async def classify(self, scan: ScanInput) -> Classification:
        key = cache_key(scan)
        cached = self.cache.get(key)
        if cached is not None:  # these very bytes were decoded and classified before
            return cached
        # Garbage is refused before the backend sees it (ImageRejected propagates).
        decoded = await asyncio.to_thread(decode_image, scan.image)
        result = await self.inner.classify_image(scan, decoded)
        # A fallback answer is not worth remembering: the better backend may be back next time.
        if "fallback" not in result.model:
            self.cache.put(key, result)
        return result
