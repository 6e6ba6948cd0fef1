"""Celery tasks. They take a job, open what they need and call the pipeline; nothing else.

The worker process builds what runs scans with the one wiring module
(:func:`server.container.build_pipeline`): the pipeline's parts only, nothing of the web app.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_shutdown

from server.pipeline.chat import run_chat
from server.pipeline.emitter import EventsNotDelivered
from server.pipeline.jobs import ChatJob, ScanJob
from server.pipeline.run import PipelineDeps, run_scan
from server.settings import UploadSettings
from server.uploads.sweep import sweep_periodically
from workers.app import CHAT_TASK, SCAN_TASK, make_celery
from workers.loop import on_worker_loop, stop_worker_loop, worker_loop

log = logging.getLogger(__name__)

_deps: PipelineDeps | None = None
_deps_lock: asyncio.Lock | None = None
_sweeper: asyncio.Task[None] | None = None


async def pipeline_deps() -> PipelineDeps:
    """The process's pipeline dependencies, built once on the worker's loop."""
    global _deps, _deps_lock
    if _deps is None:
        if _deps_lock is None:
            _deps_lock = asyncio.Lock()
        async with _deps_lock:
            if _deps is None:
                from server.container import build_pipeline
                from server.runtime import settle_heap
                from server.settings import get_settings

                deps = await build_pipeline(get_settings())
                # RabbitMQ runs a job again when its worker died before acknowledging it.
                _deps = dataclasses.replace(deps, jobs_may_rerun=True)
                settle_heap()
    return _deps


async def _scan(job: ScanJob) -> str:
    return (await run_scan(job, await pipeline_deps())).value


async def _chat(job: ChatJob) -> None:
    try:
        await run_chat(job, await pipeline_deps())
    except EventsNotDelivered:
        # Not run again (unlike a scan): an answer is generated and stored anew each time, so a
        # rerun could store it twice. The client asks again.
        log.warning("chat %s: its final event could not be delivered", job.request_id,
                    exc_info=True)


def scan(job: dict[str, Any]) -> str:
    return on_worker_loop(_scan(ScanJob.model_validate(job)))


def chat(job: dict[str, Any]) -> str | None:
    return on_worker_loop(_chat(ChatJob.model_validate(job)))


async def start_sweeper(
    deps: PipelineDeps, limits: UploadSettings, *, first_delay_s: float | None = None
) -> asyncio.Task[None]:
    """The sweep of abandoned uploads (server.uploads.sweep), as a task on the worker's loop
    (Celery beat is not used: every worker process sweeps now and then; the sweep is safe to
    run in several at once)."""
    global _sweeper
    if _sweeper is None or _sweeper.done():
        _sweeper = asyncio.create_task(
            sweep_periodically(deps.db, deps.storage, limits, first_delay_s=first_delay_s),
            name="upload-sweep",
        )
    return _sweeper


async def _start_housekeeping() -> None:
    from server.settings import get_settings

    await start_sweeper(await pipeline_deps(), get_settings().uploads)


def _prepare(**_: Any) -> None:
    # Models, connections and the frozen heap before the first task, not during it.
    worker_loop().run(pipeline_deps())
    worker_loop().run(_start_housekeeping())


async def _stop_sweeper() -> None:
    global _sweeper
    sweeper, _sweeper = _sweeper, None
    if sweeper is not None:
        sweeper.cancel()
        await asyncio.gather(sweeper, return_exceptions=True)


async def _close() -> None:
    global _deps
    await _stop_sweeper()
    if _deps is not None:
        from server.container import close_pipeline

        deps, _deps = _deps, None
        await close_pipeline(deps)


def _shutdown(**_: Any) -> None:
    worker_loop().run(_close())
    stop_worker_loop()


def make_worker_app(broker_url: str, queue: str, *, quorum: bool = False) -> Celery:
    """The worker's Celery app: the tasks, and the worker process's start and stop hooks."""
    app = make_celery(broker_url, queue, quorum=quorum)
    app.task(name=SCAN_TASK, acks_late=True)(scan)
    app.task(name=CHAT_TASK, acks_late=True)(chat)
    worker_init.connect(_prepare, weak=False)
    worker_shutdown.connect(_shutdown, weak=False)
    return app
