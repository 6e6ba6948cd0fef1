"""Who runs a scan job: the server's own event loop (embedded) or a Celery worker (distributed).

Both runners take the same :class:`ScanJob` and end in the same :func:`run_scan`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from server.pipeline.chat import ChatJob, run_chat
from server.pipeline.run import PipelineDeps, ScanJob, run_scan

log = logging.getLogger(__name__)

SCAN_TASK = "wastecoach.scan"
CHAT_TASK = "wastecoach.chat"


class ScanRunner(Protocol):
    async def submit(self, job: ScanJob) -> None: ...

    async def submit_chat(self, job: ChatJob) -> None: ...

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

    async def wait_idle(self, timeout: float) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class CeleryRunner:
    """Enqueues on RabbitMQ. The job is committed to the database before this is called."""

    def __init__(self, broker_url: str, queue: str) -> None:
        from workers.celery_app import make_celery

        self._app = make_celery(broker_url, queue)

    async def submit(self, job: ScanJob) -> None:
        await self._send(SCAN_TASK, job.model_dump(mode="json"), f"scan {job.scan_id}",
                         f"{job.session_id}:{job.request_id}")

    async def submit_chat(self, job: ChatJob) -> None:
        await self._send(CHAT_TASK, job.model_dump(mode="json"), f"chat {job.request_id}",
                         f"{job.session_id}:{job.request_id}")

    async def _send(self, task: str, payload: dict[str, object], summary: str,
                    task_id: str) -> None:
        # kombu's publish blocks; keep it off the event loop. The argsrepr header is what
        # monitoring tools (flower, events, logs) show of a task: a short summary, because
        # Celery would otherwise put a repr of the job, inline photo or question text included,
        # in every message header (and that repr costs half of the publish).
        await asyncio.to_thread(
            self._app.send_task,
            task,
            args=[payload],
            task_id=task_id,
            argsrepr=summary,
            kwargsrepr="{}",
        )

    async def close(self) -> None:
        await asyncio.to_thread(self._app.close)
