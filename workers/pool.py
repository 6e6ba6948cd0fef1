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

Faults. When the broker connection is lost, Celery calls :meth:`LoopPool.flush`: the jobs still
waiting came on the old channel, whose delivery tags mean nothing on the next one, and RabbitMQ
hands those messages out again, so they are dropped here rather than run twice. Tasks already
running go on (``worker_cancel_long_running_tasks_on_connection_loss`` is off): their
acknowledgement then fails, which Celery logs, and their redelivered copy finds the scan done.
Reporting to Celery never raises into the loop (a failed report would keep a slot forever). A
task that ends with :class:`~server.pipeline.emitter.RunLater` (the event log stayed unreachable,
so the client never got its ``scan.done``; or another run of the same scan holds its lease) is
not acknowledged: after
``REQUEUE_DELAY_S`` its message is rejected with requeue through Celery's own ``Reject``, and
RabbitMQ runs it again. The delay, on top of the emitter's 30 s of retries before it gives up,
keeps a lasting outage from turning into a hot redelivery loop.

Why not a published asyncio pool: ``celery-aio-pool`` is AGPL, and ``celery-pool-asyncio`` has
not been released since 2020 and patches Celery's internals.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from billiard.einfo import ExceptionInfo
from celery.concurrency.base import BasePool
from celery.exceptions import Reject

from server.pipeline.emitter import RunLater
from workers.loop import open_hand_over, take_handed_over, worker_loop

log = logging.getLogger(__name__)

#: Pause before a job whose events could not be delivered goes back to the queue.
REQUEUE_DELAY_S = 5.0

_Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], Callable[..., Any] | None,
             Callable[..., Any] | None, float | None]


class LoopPool(BasePool):  # type: ignore[misc]  # celery ships no type information
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
            _report(callback, ret)
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
        if isinstance(error, RunLater):
            log.warning("task requeued in %.0f s: %s", REQUEUE_DELAY_S, error)
            assert self._loop is not None
            self._loop.call_later(REQUEUE_DELAY_S, _requeue, callback)
        else:
            if error is not None:  # acknowledged all the same, as Celery does a failed task
                log.error("task failed", exc_info=error)
            _report(callback, ret)  # Request.on_success: acknowledges the message
        self._next()

    def _next(self) -> None:
        while self._waiting and len(self._running) < (self.limit or 1):
            self._start(self._waiting.popleft())

    # Called from the worker's main thread.

    def flush(self) -> None:
        """The broker connection was lost: drop the jobs not started yet (see the module's
        docstring); RabbitMQ redelivers their messages on the new connection."""
        if self._loop is None or self._loop.is_closed():
            return
        # Queued behind every job admitted so far, ahead of any from the new connection.
        self._loop.call_soon_threadsafe(self._drop_waiting)

    def _drop_waiting(self) -> None:
        if self._waiting:
            log.warning("broker connection lost: %d waiting tasks left to redelivery",
                        len(self._waiting))
            self._waiting.clear()

    def on_stop(self) -> None:
        """Warm shutdown: wait for the running tasks (each has its time limit)."""
        if self._loop is None or self._loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self._drain(), self._loop)
        future.result()
        _reporter.close()

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
        info: dict[str, Any] = super()._get_info()
        info.update({"running": len(self._running), "waiting": len(self._waiting)})
        return info


class _Reporter:
    """Hands tasks' ends to Celery on a thread of their own.

    Celery's callback acknowledges (or rejects) the message with a blocking write on the
    broker connection. On the loop's thread that write stopped every scan of the worker: after
    a broker restart, acknowledgements on the dead connection blocked up to its socket timeout
    each, one after the other (seen: the loop frozen 90 s). Here they wait in line on their own
    thread, and the loop goes on; a failed acknowledgement leaves the message to be redelivered,
    which the pipeline's idempotency makes harmless.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], Any] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, callback: Callable[..., Any] | None, ret: Any) -> None:
        if callback is None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wc-acks", daemon=True)
                self._thread.start()
        self._queue.put((callback, ret))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            callback, ret = item
            try:
                callback(ret)
            except Exception:
                log.exception("could not report the end of a task to Celery")

    def close(self, timeout: float = 10.0) -> None:
        """Report what is queued (up to ``timeout``), then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)


_reporter = _Reporter()


def _report(callback: Callable[..., Any] | None, ret: Any) -> None:
    """Hand a task's end to Celery, off the loop's thread (see :class:`_Reporter`)."""
    _reporter.put(callback, ret)


def _requeue(callback: Callable[..., Any] | None) -> None:
    """Reject the task's message with requeue, as Celery does for a task raising
    ``Reject(requeue=True)``: ``callback`` is the bound ``Request.on_success``, which takes a
    failed ``(True, ExceptionInfo, runtime)`` result to ``on_failure`` and there to
    ``Request.reject(requeue=True)`` (after marking the request done in the worker's state)."""
    try:
        raise Reject("the task's events could not be delivered", requeue=True)
    except Reject:
        failed = (True, ExceptionInfo(), 0.0)
    _report(callback, failed)


async def _bounded(coro: Coroutine[Any, Any, Any], timeout: float | None) -> Any:
    if timeout is None:
        return await coro
    async with asyncio.timeout(timeout):
        return await coro
