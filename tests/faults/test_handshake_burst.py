"""20 session.start at once on a freshly started server, five times: no freeze, all ready."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.checks import Verdict
from tests.faults.harness import FaultStack, LatencyProxy, Probe, summarise
from tests.faults.load import LoadSession, guest_tokens

pytestmark = [pytest.mark.fault]

CLIENTS = 20
#: Redis connect latency per round: three rounds direct, two through a proxy that delays each
#: new Redis connection (the first pub/sub subscription then takes that long to connect).
ROUND_DELAYS = (0.0, 0.0, 0.0, 0.2, 0.2)
READY_BOUND_S = 10.0


@pytest.mark.timeout(240)
async def test_burst_of_session_starts_on_fresh_server(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    stack = fault_stack
    direct_url = stack.env["WASTECOACH_REDIS_URL"]
    proxy = await LatencyProxy(stack.services.redis.port, 0.2).start()
    problems: list[str] = []
    rounds: list[dict[str, object]] = []
    try:
        await _rounds(stack, proxy, direct_url, problems, rounds)
    finally:
        await proxy.stop()
    verdict = Verdict(violations=[f"log too big: {x}" for x in stack.oversized_logs()])
    summarise("handshake_burst", tmp_path, verdict, rounds=rounds,
              max_all_ready_s=max(float(str(r["all_ready_s"])) for r in rounds))
    problems += verdict.violations
    assert not problems, "\n".join(problems) + "\n" + "\n".join(
        stack.log_excerpt("RuntimeError", 3))


async def _rounds(stack: FaultStack, proxy: LatencyProxy, direct_url: str,
                  problems: list[str], rounds: list[dict[str, object]]) -> None:
    for round_no, delay in enumerate(ROUND_DELAYS, 1):
        stack.configure(WASTECOACH_REDIS_URL=direct_url if not delay else
                        f"redis://127.0.0.1:{proxy.port}/0")
        if round_no == 1:
            await asyncio.to_thread(stack.start, 0, warm=False)  # no worker: handshakes only
        else:
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
        rounds.append({"redis_connect_delay_s": delay, "ready": ready,
                       "all_ready_s": round(elapsed, 2),
                       "healthz_failures": len(health.failures()),
                       "healthy_after": healthy_after})
        for s in sessions:
            await s._drop()
        if ready != CLIENTS or elapsed > READY_BOUND_S or not healthy_after:
            problems.append(f"round {round_no}: {ready}/{CLIENTS} ready in {elapsed:.1f} s, "
                            f"healthz after: {healthy_after}, failures {failures[:3]}")
            return  # a frozen server: the later rounds would only repeat it
