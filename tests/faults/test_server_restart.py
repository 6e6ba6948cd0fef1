"""Server SIGTERM under load, three times in a row: drain with 1012, restart on the same port,
clients resume and every accepted scan ends."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.faults.harness import FaultStack, settle, summarise
from tests.faults.load import Load

pytestmark = [pytest.mark.fault]

SESSIONS = 30
RESTARTS = 3
DRAIN_BOUND_S = 20.0
#: A scan.start already being handled when SIGTERM arrives may still be accepted this long
#: after it.
ACCEPT_GRACE_S = 1.0


def _ts(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()


@pytest.mark.timeout(240)
async def test_sigterm_drains_with_1012_three_times(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    stack = fault_stack
    await asyncio.to_thread(stack.start, 1)
    load = await Load.start(stack.server.base_url, stack.server.ws_url, SESSIONS)
    for s in load.sessions[::3]:
        s.image = b"SLOW"
    await load.wait_connected()
    problems: list[str] = []
    rounds = []
    for round_no in range(1, RESTARTS + 1):
        await asyncio.sleep(3)
        open_conns = {s.name: s.conn for s in load.sessions if s.ws is not None}
        term_at = time.time()
        stack.server.signal(signal.SIGTERM)
        code = await asyncio.to_thread(stack.server.wait, 30)
        exited_at = time.time()
        if code is None:
            problems.append(f"round {round_no}: the server did not exit within 30 s of SIGTERM")
            stack.server.kill()
        elif code not in (0, -signal.SIGTERM):  # uvicorn re-raises the signal it handled
            problems.append(f"round {round_no}: the server exited with {code}")
        # Every connection open at SIGTERM must have been closed with 1012.
        for s in load.sessions:
            conn = open_conns.get(s.name)
            if conn is None:
                continue
            closes = [c for c in s.closes if c.conn == conn]
            if not closes or closes[0].code != 1012:
                problems.append(f"round {round_no}: {s.name} conn {conn} closed with "
                                f"{[(c.code, c.reason) for c in closes]}, not 1012")
        # No connection accepted scans while draining.
        late = [(s.name, r.event["request_id"], round(_ts(r.event) - term_at, 2))
                for s in load.sessions for r in s.received
                if r.event.get("type") == "scan.accepted"
                and term_at + ACCEPT_GRACE_S < _ts(r.event) < exited_at]
        if late:
            problems.append(f"round {round_no}: scans accepted during the drain: {late[:5]}")
        restart_at = time.time()
        await asyncio.to_thread(stack.server.start, 60)
        recovery = await load.wait_completions(restart_at, SESSIONS, timeout=40)
        rounds.append({"drain_s": round(exited_at - term_at, 2),
                       "restart_s": round(time.time() - restart_at, 2) if recovery else None,
                       "recovery_s": None if recovery is None else round(recovery, 2)})
        if exited_at - term_at > DRAIN_BOUND_S:
            problems.append(f"round {round_no}: drain took {exited_at - term_at:.1f} s")
        if recovery is None:
            problems.append(f"round {round_no}: scans did not complete within 40 s of restart")
    verdict = await settle(load, stack, timeout=40)
    summarise("server_sigterm_x3", tmp_path, verdict, rounds=rounds,
              max_drain_s=max(r["drain_s"] or 0 for r in rounds),
              max_recovery_s=max((r["recovery_s"] or 99) for r in rounds))
    problems += verdict.violations
    assert not problems, "\n".join(problems[:40]) + "\n" + "\n".join(
        stack.log_excerpt("Traceback", 5))
