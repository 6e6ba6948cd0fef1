"""Celery tasks. They take a job, open what they need and call the pipeline; nothing else."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from celery.signals import worker_init, worker_shutdown

from server.pipeline.chat import ChatJob, run_chat
from server.pipeline.emitter import EventsNotDelivered
from server.pipeline.run import PipelineDeps, ScanJob, run_scan
from server.pipeline.runner import CHAT_TASK, SCAN_TASK
from server.services import close_stages
from workers.celery_app import app
from workers.loop import on_worker_loop, stop_worker_loop, worker_loop

log = logging.getLogger(__name__)

_deps: PipelineDeps | None = None
_deps_lock: asyncio.Lock | None = None


async def pipeline_deps() -> PipelineDeps:
    """The process's pipeline dependencies, built once on the worker's loop."""
    global _deps, _deps_lock
    if _deps is None:
        if _deps_lock is None:
            _deps_lock = asyncio.Lock()
        async with _deps_lock:
            if _deps is None:
                from server.pipeline.factory import warm_up
                from server.runtime import settle_heap
                from server.services import build_pipeline_deps
                from server.settings import get_settings

                await asyncio.to_thread(warm_up)
                deps = await build_pipeline_deps(get_settings())
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


@app.task(name=SCAN_TASK, acks_late=True)  # type: ignore[untyped-decorator]
def scan(job: dict[str, Any]) -> str:
    return on_worker_loop(_scan(ScanJob.model_validate(job)))


@app.task(name=CHAT_TASK, acks_late=True)  # type: ignore[untyped-decorator]
def chat(job: dict[str, Any]) -> str | None:
    return on_worker_loop(_chat(ChatJob.model_validate(job)))


@worker_init.connect  # type: ignore[untyped-decorator]
def _prepare(**_: Any) -> None:
    # Models, connections and the frozen heap before the first task, not during it.
    worker_loop().run(pipeline_deps())


async def _close() -> None:
    global _deps
    if _deps is not None:
        deps, _deps = _deps, None
        await deps.log.close()
        await close_stages(deps.stages)
        await deps.db.dispose()


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _shutdown(**_: Any) -> None:
    worker_loop().run(_close())
    stop_worker_loop()
