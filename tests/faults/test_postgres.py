"""PostgreSQL fault: the database is down for 10 s under load."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.harness import FaultStack, Probe, settle, summarise
from tests.faults.load import Load

pytestmark = [pytest.mark.fault]

SESSIONS = 10
DOWN_S = 10.0
RECOVERY_BOUND_S = 15.0
SEOUL = {"lat": 37.5665, "lon": 126.978}


@pytest.mark.timeout(150)
async def test_postgres_down_10s(fault_stack: FaultStack, tmp_path: Path) -> None:
    stack = fault_stack
    # The product's locations stage queries PostgreSQL in every scan that has a location.
    stack.configure(WASTECOACH_STAGES_FACTORY="tests.support.stages:build_with_real_locations")
    await asyncio.to_thread(stack.start, 1)
    health = Probe(stack.server.base_url, "/healthz").start()
    load = await Load.start(stack.server.base_url, stack.server.ws_url, SESSIONS,
                            location=SEOUL)
    await load.wait_connected()
    await asyncio.sleep(3)
    assert await load.wait_completions(time.time() - 60, SESSIONS, timeout=30) is not None

    down_at = time.time()
    await asyncio.to_thread(stack.services.pg.stop)
    guest_down: list[tuple[int | None, str, str]] = []
    async with httpx.AsyncClient(base_url=stack.server.base_url, timeout=8) as http:
        for _ in range(2):
            try:
                r = await http.post("/api/v1/auth/guest")
                guest_down.append((r.status_code, r.headers.get("content-type", ""),
                                   r.text[:200]))
            except httpx.HTTPError as exc:
                guest_down.append((None, "", repr(exc)))
            await asyncio.sleep(1)
        await asyncio.sleep(max(0.0, DOWN_S - (time.time() - down_at)))
        await asyncio.to_thread(stack.services.pg.start)
        up_at = time.time()
        guest_after: int | None = None
        for _ in range(20):
            try:
                guest_after = (await http.post("/api/v1/auth/guest")).status_code
                if guest_after == 201:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    recovery = await load.wait_completions(up_at, SESSIONS, timeout=30)
    await asyncio.sleep(1)
    verdict = await settle(load, stack, timeout=45)
    await health.stop()

    failed = [f"{s.name}/{r.request_id}: {r.error}" for s in load.sessions
              for r in s.scans.values() if r.status == "failed"]
    summarise(
        "postgres_down_10s", tmp_path, verdict,
        down_s=round(up_at - down_at, 2),
        recovery_s=None if recovery is None else round(recovery, 2),
        guest_while_down=guest_down, guest_after=guest_after,
        healthz_failures=len(health.failures()),
        failed_scans=failed[:10],
    )
    problems = list(verdict.violations)
    for status, content_type, body in guest_down:
        if status != 503 or not content_type.startswith("application/json") or \
                '"error"' not in body:
            problems.append(f"POST /api/v1/auth/guest with PostgreSQL down answered {status} "
                            f"{content_type!r} {body!r}; expected 503 with a JSON error")
    if guest_after != 201:
        problems.append(f"POST /api/v1/auth/guest after PostgreSQL returned: {guest_after}")
    if failed:
        problems.append(f"scans failed across a 10 s database outage (outcomes are retried "
                        f"for 30 s): {failed[:5]}")
    if health.failures():
        problems.append(f"/healthz failed {len(health.failures())} times")
    if recovery is None or recovery > RECOVERY_BOUND_S:
        problems.append(f"scans after PostgreSQL returned did not complete within "
                        f"{RECOVERY_BOUND_S} s (measured {recovery})")
    assert not problems, "\n".join(problems) + "\n" + "\n".join(
        stack.log_excerpt("ERROR", 8))
