"""Answer a photo seen before without classifying it again.

Two shots of the same item a second apart differ in every byte but look the same, so the key is
a perceptual hash, not a checksum. :func:`dhash` is the 64-bit difference hash (the image
shrunk to 9 × 8 grey pixels, one bit per horizontal neighbour pair): cheap (well under a
millisecond), steady under re-encoding, rescaling and small exposure changes, different for a
different item. Two hashes within ``max_distance`` bits (Hamming distance) count as the same
photo. The default of 4 bits out of 64 was chosen on the TrashNet photos: re-encoded or
slightly shifted copies of one photo stay within it, while no two different photos of the
set come that close (``tests/vision/test_cache.py`` checks both).

The cache is in-process and bounded (least recently used goes first); a miss costs one linear
scan of at most ``capacity`` integers, which for a few thousand entries is microseconds.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict

import numpy as np
from PIL import Image

from protocol.messages import Classification
from server.pipeline.stages import ScanInput, VisionStage
from server.vision.images import decode_image

HASH_SIZE = 8


def dhash(image: Image.Image) -> int:
    """64-bit difference hash of ``image``."""
    grey = image.convert("L").resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.BILINEAR)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class PerceptualCache:
    """Bounded LRU from perceptual hash to classification, thread-safe."""

    def __init__(self, capacity: int = 2048, max_distance: int = 4) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.max_distance = max_distance
        self._entries: OrderedDict[int, Classification] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: int) -> Classification | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                nearest = min(self._entries, key=lambda other: hamming(key, other), default=None)
                if nearest is not None and hamming(key, nearest) <= self.max_distance:
                    key, found = nearest, self._entries[nearest]
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: int, value: Classification) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


class CachedVision:
    """A :class:`VisionStage` that asks ``inner`` only about photos it has not seen."""

    def __init__(self, inner: VisionStage, cache: PerceptualCache | None = None) -> None:
        self.inner = inner
        self.cache = cache if cache is not None else PerceptualCache()

    async def classify(self, scan: ScanInput) -> Classification:
        # Decoding also validates the bytes, so garbage is refused before the cache or the
        # backend sees it (ImageRejected propagates).
        key = await asyncio.to_thread(lambda: dhash(decode_image(scan.image).image))
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        result = await self.inner.classify(scan)
        # A fallback answer is not worth remembering: the better backend may be back next time.
        if "fallback" not in result.model:
            self.cache.put(key, result)
        return result
