"""A worker SIGKILLed under load (one of two) and restarted: nothing lost, nothing twice,
including a scan that already passed scan.clarify."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.faults.harness import FaultStack, settle, summarise
from tests.faults.load import Load, LoadSession, guest_tokens

pytestmark = [pytest.mark.fault]

SESSIONS = 10
#: A redelivered scan must end this soon after the worker is back.
REDELIVERY_BOUND_S = 20.0


@pytest.mark.timeout(180)
async def test_worker_sigkill_and_restart(fault_stack: FaultStack, tmp_path: Path) -> None:
    stack = fault_stack
    await asyncio.to_thread(stack.start, 2)
    load = await Load.start(stack.server.base_url, stack.server.ws_url, SESSIONS,
                            image=b"SLOW")
    await load.wait_connected()
    await asyncio.sleep(3)

    # The clarify scan: unsure vision, the person picks the second choice (PET, not the
    # model's glass guess), then slow coaching during which its worker dies.
    [token] = await guest_tokens(stack.server.base_url, 1)
    asker = LoadSession(stack.server.ws_url, token, "asker", clarify_choice=1)
    await asker.connect()
    record = await asker.start_scan(b"UNSURESLOW")
    assert asker.ws is not None
    deadline = time.time() + 20
    while time.time() < deadline and not any(
            e["type"] == "coaching.delta" for e in asker.events_of(record.request_id)):
        asker._on_event(await asyncio.wait_for(asker.ws.recv(), 20))
    kinds = [e["type"] for e in asker.events_of(record.request_id)]
    assert "scan.clarify" in kinds and kinds.count("scan.classified") == 2, kinds

    # Kill the worker that runs it (the task id is "<session_id>:<request_id>").
    task_id = f"{asker.session_id}:{record.request_id}"
    victim = next((w for w in stack.workers if task_id in w.log_text()), stack.workers[0])
    killed_at = time.time()
    await asyncio.to_thread(victim.kill)
    await asyncio.sleep(1)
    await asyncio.to_thread(victim.start)
    restarted_at = time.time()

    asker_task = asyncio.create_task(asker.run(load.stop))
    load.sessions.append(asker)
    load.tasks.append(asker_task)
    ended: float | None = None
    while time.time() - restarted_at < 70:
        if record.status is not None:
            ended = record.done_at
            break
        await asyncio.sleep(0.2)
    recovery = await load.wait_completions(restarted_at, SESSIONS, timeout=30)
    verdict = await settle(load, stack, timeout=70)

    mine = asker.events_of(record.request_id)
    bins = [e for e in mine if e["type"] == "bins.suggested"]
    deltas = [e["index"] for e in mine if e["type"] == "coaching.delta"]
    survivor_alive = all(w.alive for w in stack.workers)
    summarise(
        "worker_sigkill", tmp_path, verdict,
        clarify_scan_status=record.status,
        clarify_scan_end_after_restart_s=None if ended is None else round(ended - restarted_at,
                                                                           2),
        clarify_scan_stream=bins[0]["stream"] if bins else None,
        killed_worker=victim.name, kill_to_restart_s=round(restarted_at - killed_at, 2),
        recovery_s=None if recovery is None else round(recovery, 2),
        workers_alive=survivor_alive,
    )
    problems = list(verdict.violations)
    if record.status != "completed" or ended is None or \
            ended - restarted_at > REDELIVERY_BOUND_S:
        problems.append(
            f"the clarified scan did not complete within {REDELIVERY_BOUND_S} s of the worker "
            f"restart: status {record.status}, after "
            f"{None if ended is None else round(ended - restarted_at, 1)} s; events "
            f"{[e['type'] for e in mine]}")
    if bins and bins[0]["stream"] != "clear_pet":
        problems.append(f"the redelivered scan forgot the person's answer: bins for "
                        f"{bins[0]['stream']}, the answer was pet_bottle (clear_pet)")
    if deltas != list(range(len(deltas))) or len(deltas) != 20:
        problems.append(f"clarified scan's deltas not 0..19 once each: {deltas}")
    if recovery is None:
        problems.append("scans started after the restart did not complete within 30 s")
    assert not problems, "\n".join(problems[:30])
