"""A Celery execution pool that runs tasks on the worker's asyncio event loop.

The pipeline is async. With Celery's thread pool every task crossed two threads before its
first await (the consumer hands the message to a pool thread, which hands the coroutine to the
event loop's thread and blocks until it ends): two thread wake-ups, each 0.1 to 0.3 ms on our
2-core VM, and threads that do nothing but wait. This pool hands the task straight to the loop's
thread (one wake-up) and runs Celery's tracer there; a task written with
:func:`workers.loop.on_worker_loop` returns its coroutine to the pool instead of blocking, and
the pool runs it as an asyncio task. Celery's acknowledgement (the tasks are ``acks_late``) is
called when the coroutine has ended, not when the tracer returned, so a worker that dies
mid-scan still leaves the message to be redelivered.

At most ``--concurrency`` tasks run at once; the others wait in order. ``task_time_limit``
becomes a timeout on the coroutine. A task that does not use ``on_worker_loop`` runs to its end
inside the tracer, as under the solo pool. The app selects it (``worker_pool``).

Why not a published asyncio pool: ``celery-aio-pool`` is AGPL, and ``celery-pool-asyncio`` has
not been released since 2020 and patches Celery's internals.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

from celery.concurrency.base import BasePool

from workers.loop import open_hand_over, take_handed_over, worker_loop

log = logging.getLogger(__name__)

_Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], Callable[..., Any] | None,
             Callable[..., Any] | None, float | None]


class LoopPool(BasePool):
    signal_safe = False
    body_can_be_buffer = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._running: set[asyncio.Task[Any]] = set()
        self._waiting: collections.deque[_Job] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    def on_start(self) -> None:
        self._loop = worker_loop().loop

    def on_apply(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        callback: Callable[..., Any] | None = None,
        accept_callback: Callable[..., Any] | None = None,
        timeout: float | None = None,
        **_: Any,
    ) -> None:
        assert self._loop is not None, "the pool was not started"
        job: _Job = (target, tuple(args or ()), kwargs or {}, callback, accept_callback, timeout)
        self._loop.call_soon_threadsafe(self._admit, job)

    # Everything below runs on the loop's thread.

    def _admit(self, job: _Job) -> None:
        if len(self._running) >= (self.limit or 1):
            self._waiting.append(job)
            return
        self._start(job)

    def _start(self, job: _Job) -> None:
        target, args, kwargs, callback, accept_callback, timeout = job
        if accept_callback is not None:
            accept_callback(os.getpid(), time.monotonic())
        open_hand_over()
        try:
            ret = target(*args, **kwargs)  # Celery's tracer: runs the task function
        except Exception:  # Celery's own failure: the task's are handled inside the tracer
            log.exception("task tracer failed")
            coro = take_handed_over()
            if coro is not None:
                coro.close()
            self._next()
            return
        coro = take_handed_over()
        if coro is None:  # an ordinary task: it has run to its end
            if callback is not None:
                callback(ret)
            self._next()
            return
        task = asyncio.get_running_loop().create_task(_bounded(coro, timeout))
        self._running.add(task)
        task.add_done_callback(lambda done: self._finished(done, ret, callback))

    def _finished(self, task: asyncio.Task[Any], ret: Any,
                  callback: Callable[..., Any] | None) -> None:
        self._running.discard(task)
        if task.cancelled():  # cold shutdown: not acknowledged, so RabbitMQ redelivers it
            return
        error = task.exception()
        if error is not None:  # acknowledged all the same, as Celery does a failed task
            log.error("task failed", exc_info=error)
        if callback is not None:
            callback(ret)  # Request.on_success: acknowledges the message
        self._next()

    def _next(self) -> None:
        while self._waiting and len(self._running) < (self.limit or 1):
            self._start(self._waiting.popleft())

    # Shutdown: called from the worker's main thread.

    def on_stop(self) -> None:
        """Warm shutdown: wait for the running tasks (each has its time limit)."""
        if self._loop is None or self._loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self._drain(), self._loop)
        future.result()

    def on_terminate(self) -> None:
        """Cold shutdown: cancel what runs; unacknowledged messages go back to the queue."""
        if self._loop is None or self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop).result()

    async def _drain(self) -> None:
        self._waiting.clear()  # never started, never acknowledged: RabbitMQ redelivers them
        while self._running:
            await asyncio.wait(set(self._running))

    async def _cancel_all(self) -> None:
        self._waiting.clear()
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.wait(set(self._running))

    def _get_info(self) -> dict[str, Any]:
        info = super()._get_info()
        info.update({"running": len(self._running), "waiting": len(self._waiting)})
        return info


async def _bounded(coro: Coroutine[Any, Any, Any], timeout: float | None) -> Any:
    if timeout is None:
        return await coro
    async with asyncio.timeout(timeout):
        return await coro
