"""The Celery pool that runs tasks on the worker's event loop (workers/pool.py).

Driven the way Celery's consumer drives a pool: ``apply_async`` from another thread with a
target (standing in for Celery's tracer, which calls the task function) and the callbacks
that acknowledge the message. Real loop thread, real asyncio tasks.
"""

from __future__ import annotations

import asyncio
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
from celery.worker.request import Request

from server.pipeline.emitter import EventsNotDelivered
from workers import pool as pool_module
from workers.loop import HANDED_OVER, on_worker_loop, worker_loop
from workers.pool import LoopPool


class Acks:
    """Records what the pool reports back, as Celery's Request would."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.acked: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def job(self, name: str, body: Any) -> dict[str, Any]:
        def tracer() -> Any:
            return body()

        def accept(_pid: int, _at: float) -> None:
            with self.lock:
                self.accepted.append(name)

        def ack(ret: Any) -> None:
            with self.lock:
                self.acked.append((name, ret))

        return {"target": tracer, "callback": ack, "accept_callback": accept}

    def wait_for(self, count: int, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.acked) >= count:
                    return
            time.sleep(0.005)
        raise AssertionError(f"only {len(self.acked)} of {count} tasks were acknowledged")


@pytest.fixture
def pool() -> Iterator[LoopPool]:
    pool = LoopPool(limit=2)
    pool.start()
    yield pool
    pool.stop()


def test_a_coroutine_task_is_acknowledged_only_when_it_ends(pool: LoopPool) -> None:
    acks = Acks()
    release = threading.Event()
    ran_on: list[threading.Thread] = []

    async def scan() -> str:
        ran_on.append(threading.current_thread())
        await asyncio.to_thread(release.wait)
        return "completed"

    pool.apply_async(**acks.job("a", lambda: on_worker_loop(scan())))
    time.sleep(0.1)
    assert acks.accepted == ["a"]
    assert acks.acked == [], "acknowledged before the scan ended: a crash would lose it"
    release.set()
    acks.wait_for(1)
    assert acks.acked == [("a", HANDED_OVER)]
    assert ran_on == [worker_loop().thread]


def test_no_more_than_the_concurrency_run_at_once_and_the_rest_keep_their_order(
    pool: LoopPool,
) -> None:
    acks = Acks()
    running = 0
    peak = 0
    started: list[str] = []

    def body(name: str) -> Any:
        async def work() -> None:
            nonlocal running, peak
            started.append(name)
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.03)
            running -= 1

        return on_worker_loop(work())

    names = [f"t{i}" for i in range(7)]
    for name in names:
        pool.apply_async(**acks.job(name, lambda name=name: body(name)))
    acks.wait_for(7)
    assert peak == 2
    assert started == names


def test_the_time_limit_ends_a_stuck_task_and_it_is_acknowledged(pool: LoopPool) -> None:
    acks = Acks()

    async def stuck() -> None:
        await asyncio.sleep(60)

    job = acks.job("stuck", lambda: on_worker_loop(stuck()))
    pool.apply_async(**job, timeout=0.05)
    acks.wait_for(1, timeout=2)  # as Celery acknowledges a task that timed out


def test_a_task_that_does_not_hand_over_runs_inside_the_tracer(pool: LoopPool) -> None:
    acks = Acks()
    pool.apply_async(**acks.job("plain", lambda: 42))
    acks.wait_for(1)
    assert acks.acked == [("plain", 42)]


def test_cold_shutdown_cancels_without_acknowledging() -> None:
    pool = LoopPool(limit=1)
    pool.start()
    acks = Acks()
    cancelled = threading.Event()

    async def long() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    pool.apply_async(**acks.job("long", lambda: on_worker_loop(long())))
    pool.apply_async(**acks.job("queued", lambda: on_worker_loop(long())))
    time.sleep(0.1)
    pool.terminate()
    assert cancelled.is_set()
    time.sleep(0.05)
    assert acks.acked == [], "an acknowledged message is not redelivered"


def test_warm_shutdown_waits_for_running_tasks() -> None:
    pool = LoopPool(limit=4)
    pool.start()
    acks = Acks()

    async def short() -> str:
        await asyncio.sleep(0.1)
        return "done"

    pool.apply_async(**acks.job("s", lambda: on_worker_loop(short())))
    time.sleep(0.02)
    pool.stop()
    assert [name for name, _ in acks.acked] == ["s"]


def test_outside_the_pool_on_worker_loop_blocks_until_the_result() -> None:
    async def answer() -> int:
        await asyncio.sleep(0.01)
        return 7

    assert on_worker_loop(answer()) == 7


def test_a_failing_tracer_frees_its_slot_for_the_next_task() -> None:
    pool = LoopPool(limit=1)
    pool.start()
    acks = Acks()

    def broken() -> Any:
        raise RuntimeError("celery could not trace the task")

    try:
        pool.apply_async(**acks.job("broken", broken))
        pool.apply_async(**acks.job("next", lambda: 1))
        acks.wait_for(1)
        assert acks.acked == [("next", 1)]
        assert acks.accepted == ["broken", "next"]
    finally:
        pool.stop()


class ChannelRequest(Request):  # type: ignore[misc]
    """Celery's own Request, with only its message channel stubbed: ``on_success`` and
    ``on_failure`` run as in a worker and end in ``_on_ack`` or ``_on_reject``."""

    def __init__(self, task_id: str) -> None:
        self.id = task_id
        self.acknowledged = False
        self._connection_errors = ()
        self._eventer = None
        self._task = types.SimpleNamespace(acks_late=True)
        self.acks: list[str] = []
        self._on_ack = lambda _logger, _errors: self.acks.append("ack")
        self._on_reject = lambda _logger, _errors, requeue: self.acks.append(
            "requeue" if requeue else "reject"
        )


def _traced(body: Any) -> Any:
    """Celery's tracer returns ``(failed, retval, runtime)`` to ``Request.on_success``."""
    return (False, body(), 0.0)


def test_a_task_whose_events_were_not_delivered_is_requeued_not_acknowledged(
    pool: LoopPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "REQUEUE_DELAY_S", 0.1)
    undelivered, fine = ChannelRequest("t1"), ChannelRequest("t2")

    async def scan() -> None:
        raise EventsNotDelivered("redis stayed away")

    async def other() -> None:
        raise RuntimeError("an ordinary failure")

    pool.apply_async(lambda: _traced(lambda: on_worker_loop(scan())),
                     callback=undelivered.on_success)
    pool.apply_async(lambda: _traced(lambda: on_worker_loop(other())), callback=fine.on_success)
    time.sleep(0.05)
    assert undelivered.acks == [], "rejected at once: a lasting outage would loop hot"
    assert fine.acks == ["ack"]  # a failed task is acknowledged, as Celery does
    deadline = time.monotonic() + 2
    while not undelivered.acks and time.monotonic() < deadline:
        time.sleep(0.01)
    assert undelivered.acks == ["requeue"]
    # Its slot was freed at once: the pool still runs tasks.
    acks = Acks()
    pool.apply_async(**acks.job("next", lambda: 1))
    acks.wait_for(1)


def test_a_failing_acknowledgement_does_not_keep_the_slot(pool: LoopPool) -> None:
    def lost_channel(_ret: Any) -> None:
        raise ConnectionError("the channel of this delivery tag is closed")

    async def scan() -> str:
        return "completed"

    for _ in range(3):  # more than the pool's two slots
        pool.apply_async(lambda: on_worker_loop(scan()), callback=lost_channel)
    acks = Acks()
    pool.apply_async(**acks.job("next", lambda: on_worker_loop(scan())))
    acks.wait_for(1)


def test_flush_drops_waiting_tasks_their_messages_come_again() -> None:
    pool = LoopPool(limit=1)
    pool.start()
    acks = Acks()
    release = threading.Event()

    async def long() -> None:
        await asyncio.to_thread(release.wait)

    try:
        pool.apply_async(**acks.job("running", lambda: on_worker_loop(long())))
        pool.apply_async(**acks.job("waiting", lambda: 1))
        time.sleep(0.05)
        pool.flush()  # the broker connection was lost
        pool.apply_async(**acks.job("after", lambda: 2))  # from the new connection
        release.set()
        acks.wait_for(2)
        time.sleep(0.05)
        assert [name for name, _ in acks.acked] == ["running", "after"]
        assert acks.accepted == ["running", "after"]
    finally:
        release.set()
        pool.stop()
