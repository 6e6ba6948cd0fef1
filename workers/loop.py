"""One asyncio event loop per worker process, in a background thread.

Celery tasks are synchronous; the pipeline is async. Running every task on a single long-lived
loop keeps the Redis, database and HTTP connections pooled across tasks (``asyncio.run`` per
task would open and close them every time), and lets a thread-pool worker run many scans
concurrently on one loop. The loop is uvloop's where it is installed (it comes with
``uvicorn[standard]``, as in the server); a Redis round trip measured 0.17 ms on it against
0.21 ms on the standard loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopThread:
    def __init__(self) -> None:
        self.loop = _new_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="wc-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
