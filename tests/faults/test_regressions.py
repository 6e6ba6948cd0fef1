"""No-fault regressions in distributed mode: a late clarify answer, and cancelling after the
replay log was trimmed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.faults.harness import FaultStack, checked, summarise
from tests.faults.load import LoadSession, guest_tokens

pytestmark = [pytest.mark.fault]


async def _read_until(session: LoadSession, done: object, timeout: float) -> None:
    assert callable(done)
    deadline = time.time() + timeout
    while not done() and time.time() < deadline:
        assert session.ws is not None
        try:
            session._on_event(await asyncio.wait_for(session.ws.recv(), 1))
        except TimeoutError:
            continue


@pytest.mark.timeout(90)
async def test_clarify_answer_after_6s_completes(fault_stack: FaultStack, tmp_path: Path) -> None:
    stack = fault_stack
    await asyncio.to_thread(stack.start, 1)
    [token] = await guest_tokens(stack.server.base_url, 1)
    session = LoadSession(stack.server.ws_url, token, "late", clarify_delay=6.0,
                          clarify_choice=1)
    await session.connect()
    record = await session.start_scan(b"UNSURE")
    await _read_until(session, lambda: record.status is not None, 30)
    await session._drop()
    events = session.events_of(record.request_id)
    kinds = [e["type"] for e in events]
    clarify_at = next((r.at for r in session.received if r.event["type"] == "scan.clarify"),
                      None)
    bins = [e for e in events if e["type"] == "bins.suggested"]
    verdict = await checked(stack, [session])
    summarise("clarify_after_6s", tmp_path, verdict, status=record.status, events=kinds,
              clarify_to_done_s=None if clarify_at is None or record.done_at is None
              else round(record.done_at - clarify_at, 2))
    problems = list(verdict.violations)
    if record.status != "completed":
        problems.append(f"scan answered after 6 s ended {record.status}: {kinds} "
                        f"{record.error}")
    if kinds.count("scan.classified") != 2:
        problems.append(f"no confirmed scan.classified after the answer: {kinds}")
    if bins and bins[0]["stream"] != "clear_pet":
        problems.append(f"the answer (pet_bottle) was not used: bins for {bins[0]['stream']}")
    assert not problems, "\n".join(problems) + "\n" + "\n".join(
        stack.log_excerpt("ERROR", 5))


SCANS = 50


@pytest.mark.timeout(150)
async def test_cancel_after_replay_log_trimmed(fault_stack: FaultStack, tmp_path: Path) -> None:
    stack = fault_stack
    # 50 scans of ~8 events: far past a 100-event replay log (the product's 2,000 events
    # are passed after ~45 scans with the real stages).
    stack.configure(WASTECOACH_SESSION__REPLAY_MAX_EVENTS="100")
    await asyncio.to_thread(stack.start, 1)
    [token] = await guest_tokens(stack.server.base_url, 1)
    session = LoadSession(stack.server.ws_url, token, "long")
    await session.connect()
    for _ in range(SCANS // 5):
        batch = [await session.start_scan() for _ in range(4)]
        await _read_until(session, lambda b=batch: all(r.status for r in b), 20)
        extra = await session.start_scan()
        await _read_until(session, lambda r=extra: r.status is not None, 20)
    assert session.last_seq > 300, session.last_seq

    results = {}
    # Cancel on the same connection, and after a resume on a new one.
    for where in ("same connection", "after resume"):
        if where == "after resume":
            await session._drop()
            ready = await session.connect()
            assert ready["resumed"], ready
        slow = await session.start_scan(b"SLOW")
        await _read_until(session, lambda s=slow: any(
            e["type"] == "coaching.delta" for e in session.events_of(s.request_id)), 15)
        if where == "after resume":
            await session._drop()
            ready = await session.connect()
            assert ready["resumed"], ready
        await session.send({"type": "scan.cancel", "request_id": slow.request_id})
        await _read_until(session, lambda s=slow: s.status is not None or any(
            e["type"] == "error" for e in session.events_of(s.request_id)), 10)
        errors = [e for e in session.events_of(slow.request_id) if e["type"] == "error"]
        results[where] = {"status": slow.status,
                          "errors": [f"{e['code']}: {e['message']}" for e in errors]}
        await _read_until(session, lambda s=slow: s.status is not None, 10)
    await session._drop()
    verdict = await checked(stack, [session])
    summarise("cancel_after_trim", tmp_path, verdict, last_seq=session.last_seq,
              results=results)
    problems = list(verdict.violations)
    for where, result in results.items():
        if result["status"] != "cancelled" or result["errors"]:
            problems.append(f"cancel {where}: {result}")
    assert not problems, "\n".join(problems)
