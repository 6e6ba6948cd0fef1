"""Process-wide settings of the Python runtime for a long-running server or worker."""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def settle_heap() -> None:
    """Call once start-up is done (modules imported, knowledge base, search index and models
    loaded): collect once, then move every object alive into the collector's permanent
    generation. Those objects live as long as the process, yet a full collection would walk all
    of them (hundreds of thousands) again and again: pauses of 40 to 100 ms under load on the
    benchmark machine, each one stalling every session on the event loop. Objects created
    afterwards are collected as usual."""
    gc.collect()
    gc.freeze()
    log.debug("%d start-up objects frozen out of garbage collection", gc.get_freeze_count())
