"""Celery tasks. They take a job, open what they need and call the pipeline; nothing else."""

from __future__ import annotations

import threading
from typing import Any

from celery.signals import worker_process_shutdown

from server.pipeline.chat import ChatJob, run_chat
from server.pipeline.run import PipelineDeps, ScanJob, run_scan
from server.pipeline.runner import CHAT_TASK, SCAN_TASK
from server.services import close_stages
from workers.celery_app import app
from workers.loop import LoopThread

_lock = threading.Lock()
_state: tuple[LoopThread, PipelineDeps] | None = None


def _runtime() -> tuple[LoopThread, PipelineDeps]:
    global _state
    with _lock:
        if _state is None:
            from server.pipeline.factory import warm_up
            from server.runtime import settle_heap
            from server.services import build_pipeline_deps
            from server.settings import get_settings

            warm_up()
            loop = LoopThread()
            deps = loop.run(build_pipeline_deps(get_settings()))
            settle_heap()
            _state = (loop, deps)
        return _state


@app.task(name=SCAN_TASK, acks_late=True)  # type: ignore[untyped-decorator]
def scan(job: dict[str, Any]) -> str:
    loop, deps = _runtime()
    status = loop.run(run_scan(ScanJob.model_validate(job), deps))
    return status.value


@app.task(name=CHAT_TASK, acks_late=True)  # type: ignore[untyped-decorator]
def chat(job: dict[str, Any]) -> None:
    loop, deps = _runtime()
    loop.run(run_chat(ChatJob.model_validate(job), deps))


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _shutdown(**_: Any) -> None:
    global _state
    if _state is not None:
        loop, deps = _state
        loop.run(deps.log.close())
        loop.run(close_stages(deps.stages))
        loop.run(deps.db.dispose())
        loop.stop()
        _state = None
