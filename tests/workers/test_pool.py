"""The Celery pool that runs tasks on the worker's event loop (workers/pool.py).

Driven the way Celery's consumer drives a pool: ``apply_async`` from another thread with a
target (standing in for Celery's tracer, which calls the task function) and the callbacks
that acknowledge the message. Real loop thread, real asyncio tasks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

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
