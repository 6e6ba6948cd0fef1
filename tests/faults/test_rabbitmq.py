"""RabbitMQ fault: the broker's application stops for 10 s under load, then starts again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.faults.harness import FaultStack, Probe, settle, summarise
from tests.faults.load import Load

pytestmark = [pytest.mark.fault]

SESSIONS = 10
DOWN_S = 10.0
#: The least time the broker stays stopped after stop_app returns (readiness is probed then).
OBSERVED_S = 6.0
RECOVERY_BOUND_S = 20.0


@pytest.mark.timeout(150)
async def test_rabbitmq_stop_app_10s(fault_stack: FaultStack, tmp_path: Path) -> None:
    stack = fault_stack
    await asyncio.to_thread(stack.start, 1)
    ready = Probe(stack.server.base_url, "/readyz", every=0.5, timeout=3).start()
    load = await Load.start(stack.server.base_url, stack.server.ws_url, SESSIONS)
    for s in load.sessions[::2]:
        s.image = b"SLOW"
    await load.wait_connected()
    await asyncio.sleep(3)
    assert await load.wait_completions(time.time() - 60, SESSIONS, timeout=30) is not None

    down_at = time.time()
    await asyncio.to_thread(stack.services.rabbit.stop_app)
    stopped_at = time.time()
    # On a loaded machine stop_app and start_app took 19 s together, and stop_app so long that
    # start_app followed at once: no probe fell between them and the test failed on nothing
    # seen. Readiness is judged on the probes answered between stop_app's return and
    # start_app's call, so that stretch lasts at least OBSERVED_S however long stop_app took.
    await asyncio.sleep(max(OBSERVED_S, DOWN_S - (stopped_at - down_at)))
    # The broker serves again part-way through start_app (which took 15 s on a loaded machine):
    # the outage, for readiness, ends when start_app is called, not when it returns.
    restarting_at = time.time()
    await asyncio.to_thread(stack.services.rabbit.start_app)
    up_at = time.time()
    recovery = await load.wait_completions(up_at, SESSIONS, timeout=40)
    # /readyz must say ready again once the broker is back.
    ready_again: float | None = None
    deadline = time.time() + 20
    while time.time() < deadline:
        recent = [t for t, status, _ in ready.samples if t > up_at and status == 200]
        if recent:
            ready_again = recent[0] - up_at
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(1)
    verdict = await settle(load, stack, timeout=40)
    await ready.stop()

    # While the broker is away (from when stop_app returned until start_app was called),
    # readiness must not claim ready.
    # A probe answered after start_app was called may have seen the broker back.
    during = [status for t, status, took in ready.samples
              if stopped_at + 1.0 <= t and t + took <= restarting_at]
    workers_alive = [w.alive for w in stack.workers]
    not_retryable = [f"{s.name}/{r.request_id}: {r.error}" for s in load.sessions
                     for r in s.scans.values()
                     if r.status == "failed" and not (r.error or {}).get("retryable")]
    summarise(
        "rabbitmq_stop_app_10s", tmp_path, verdict,
        down_s=round(up_at - down_at, 2),
        recovery_s=None if recovery is None else round(recovery, 2),
        readyz_during_outage=sorted({str(x) for x in during}),
        readyz_ready_again_s=None if ready_again is None else round(ready_again, 2),
        workers_alive=workers_alive,
    )
    problems = list(verdict.violations)
    if not during or any(status == 200 for status in during):
        problems.append(f"/readyz said ready while RabbitMQ was stopped: {during}")
    if ready_again is None:
        problems.append("/readyz did not say ready within 20 s of RabbitMQ returning")
    if not all(workers_alive):
        problems.append("a worker process exited during the broker outage:\n"
                        + "\n".join(stack.workers[0].log_text().splitlines()[-20:]))
    if recovery is None or recovery > RECOVERY_BOUND_S:
        problems.append(f"scans started after RabbitMQ returned did not complete within "
                        f"{RECOVERY_BOUND_S} s (measured {recovery})")
    if not_retryable:
        problems.append(f"scans failed without retryable: {not_retryable[:5]}")
    assert not problems, "\n".join(problems) + "\n" + "\n".join(
        stack.log_excerpt("ERROR", 8))
