"""One camera frame, analysed: decoded (bounded), measured, classified by the embedded model.

Runs in this process's own small thread pool, beside the event loop: the decode, the measures
and onnxruntime all release the GIL for most of their time. The pool's size bounds how many
frames are analysed at once in the process; each live session has at most one frame in the
pool (see :mod:`server.live.mode`), so what waits is bounded by the number of live sessions.
The hints always come from the embedded classifier, whatever backend the scans use: it is
there, it is fast, and a hint is a guess that the scan confirms.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from protocol.messages import MAX_LIVE_FRAME_BYTES, Classification
from server.live.quality import MEASURE_WIDTH, Measured, Thumb, measure
from server.vision.embedded import EmbeddedClassifier
from server.vision.images import decode_image

#: Threads analysing frames in one process (the cores, at most 4).
DEFAULT_THREADS = max(1, min(4, os.cpu_count() or 1))
#: A frame is decoded to this on its longest side at most: enough for the measures and for
#: the classifier's 224 × 224 input, and a 640 × 480 JPEG decodes at half scale for it.
DECODE_SIDE = MEASURE_WIDTH
#: A frame that differs from the last classified one by less than this (mean absolute change
#: of the 32 × 32 thumbnail, 0-1) keeps its classification, for at most ``REUSE_FOR_S``: an
#: item held still is the same item, and the classifier is most of a frame's cost.
REUSE_BELOW = 0.02
REUSE_FOR_S = 2.0


@dataclass(frozen=True, slots=True)
class Classified:
    """The last classified frame of a live mode: what the next frames may reuse."""

    thumb: Thumb
    classification: Classification
    at: float


@dataclass(frozen=True, slots=True)
class Analysis:
    measured: Measured
    classification: Classification
    content_type: str
    elapsed_ms: float
    classified: Classified
    """This frame's, when it was classified; otherwise the one it reused."""


class FrameAnalyser:
    def __init__(self, classifier: EmbeddedClassifier, *, threads: int = DEFAULT_THREADS) -> None:
        self._classifier = classifier
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None

    async def analyse(
        self, image: bytes, previous: Thumb | None, last: Classified | None = None
    ) -> Analysis:
        """Raises :class:`~server.vision.images.ImageRejected` when ``image`` is not one.
        ``last``: the live mode's last classified frame, reused when this one is the same
        picture (see ``REUSE_BELOW``)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="live")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._analyse, image, previous, last)

    def _analyse(
        self, image: bytes, previous: Thumb | None, last: Classified | None = None
    ) -> Analysis:
        started = time.perf_counter()
        decoded = decode_image(image, max_bytes=MAX_LIVE_FRAME_BYTES, max_side=DECODE_SIDE)
        measured = measure(decoded.image, previous)
        now = time.monotonic()
        if (
            last is not None
            and now - last.at < REUSE_FOR_S
            and float(np.abs(measured.thumb - last.thumb).mean()) / 255.0 < REUSE_BELOW
        ):
            classified = last
        else:
            classified = Classified(
                measured.thumb, self._classifier.classify_decoded(decoded), now
            )
        return Analysis(
            measured=measured,
            classification=classified.classification,
            content_type=decoded.source_format,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            classified=classified,
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
