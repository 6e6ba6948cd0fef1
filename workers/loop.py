"""One asyncio event loop per worker process, in a background thread.

Celery tasks are synchronous; the pipeline is async. Running every task on a single long-lived
loop keeps the Redis, database and HTTP connections pooled across tasks (``asyncio.run`` per
task would open and close them every time), and lets a thread-pool worker run many scans
concurrently on one loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="wc-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
