"""Who runs a job: the interface, and the embedded runner (the server's own event loop).

In distributed mode the runner is ``workers.publisher.CeleryRunner``: a Celery message that a
worker takes, which ends in the same :func:`~server.pipeline.run.run_scan`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from server.pipeline.chat import run_chat
from server.pipeline.jobs import ChatJob, ScanJob
from server.pipeline.run import PipelineDeps, run_scan

log = logging.getLogger(__name__)


class ScanRunner(Protocol):
    async def submit(self, job: ScanJob) -> None: ...

    async def submit_chat(self, job: ChatJob) -> None: ...

    async def health(self) -> dict[str, str]:
        """Readiness checks of what runs the jobs, each ``"ok"`` or why not."""

    async def wait_idle(self, timeout: float) -> None:
        """On shutdown: wait (at most ``timeout``) for jobs that die with this process."""

    async def close(self) -> None: ...


class EmbeddedRunner:
    def __init__(self, deps: PipelineDeps) -> None:
        self._deps = deps
        self._tasks: set[asyncio.Task[object]] = set()

    async def submit(self, job: ScanJob) -> None:
        task = asyncio.create_task(run_scan(job, self._deps), name=f"scan-{job.scan_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def submit_chat(self, job: ChatJob) -> None:
        task = asyncio.create_task(run_chat(job, self._deps), name=f"chat-{job.request_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def health(self) -> dict[str, str]:
        return {}  # runs in this process: ready when the process is

    async def wait_idle(self, timeout: float) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
