"""20 session.start at once on a freshly started server, five times: no freeze, all ready."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.checks import Verdict
from tests.faults.harness import FaultStack, Probe, summarise
from tests.faults.load import LoadSession, guest_tokens

pytestmark = [pytest.mark.fault]

CLIENTS = 20
ROUNDS = 5
READY_BOUND_S = 10.0


@pytest.mark.timeout(240)
async def test_burst_of_session_starts_on_fresh_server(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    stack = fault_stack
    await asyncio.to_thread(stack.start, 0, warm=False)  # no worker: handshakes only
    problems: list[str] = []
    rounds = []
    for round_no in range(1, ROUNDS + 1):
        if round_no > 1:
            await asyncio.to_thread(stack.server.stop)
            await asyncio.to_thread(stack.server.start, 60)
        # Tokens over plain HTTP first: the burst is of WebSocket handshakes only.
        tokens = await guest_tokens(stack.server.base_url, CLIENTS)
        health = Probe(stack.server.base_url, "/healthz", every=0.2, timeout=2).start()
        sessions = [LoadSession(stack.server.ws_url, t, f"b{round_no}-{i}")
                    for i, t in enumerate(tokens)]
        started = time.time()
        results = await asyncio.gather(*(asyncio.wait_for(s.connect(), READY_BOUND_S + 2)
                                         for s in sessions), return_exceptions=True)
        elapsed = time.time() - started
        await asyncio.sleep(1)
        await health.stop()
        ready = sum(1 for r in results if isinstance(r, dict) and r.get("type") ==
                    "session.ready")
        failures = [repr(r)[:120] for r in results if not isinstance(r, dict)]
        healthy_after = True
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                response = await http.get(stack.server.base_url + "/healthz")
            healthy_after = response.status_code == 200
        except httpx.HTTPError:
            healthy_after = False
        rounds.append({"ready": ready, "all_ready_s": round(elapsed, 2),
                       "healthz_failures": len(health.failures()),
                       "healthy_after": healthy_after})
        for s in sessions:
            await s._drop()
        if ready != CLIENTS or elapsed > READY_BOUND_S or not healthy_after:
            problems.append(f"round {round_no}: {ready}/{CLIENTS} ready in {elapsed:.1f} s, "
                            f"healthz after: {healthy_after}, failures {failures[:3]}")
            break  # a frozen server: the later rounds would only repeat it
    verdict = Verdict(violations=[f"log too big: {x}" for x in stack.oversized_logs()])
    summarise("handshake_burst", tmp_path, verdict, rounds=rounds,
              max_all_ready_s=max(r["all_ready_s"] for r in rounds))
    problems += verdict.violations
    assert not problems, "\n".join(problems) + "\n" + "\n".join(
        stack.log_excerpt("RuntimeError", 3))
