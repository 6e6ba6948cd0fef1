"""A distributed stack on the private services, probes, and the end-of-test routine."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.faults.checks import Verdict, check_sessions, db_rows, record_summary, session_ids
from tests.faults.load import Load, LoadSession
from tests.faults.procs import (
    MAX_LOG_BYTES,
    ServerProc,
    WorkerProc,
    oversized_logs,
    stack_env,
)
from tests.faults.services import PrivateServices


@dataclass
class FaultStack:
    services: PrivateServices
    log_dir: Path
    env: dict[str, str]
    server: ServerProc
    workers: list[WorkerProc] = field(default_factory=list)
    runaway: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, services: PrivateServices, tmp: Path, s3_endpoint: str,
               **env: str) -> FaultStack:
        log_dir = tmp / "logs"
        log_dir.mkdir(exist_ok=True)
        data_dir = tmp / "data"
        data_dir.mkdir(exist_ok=True)
        queue = f"wastecoach.fault.{secrets.token_hex(4)}"
        full_env = stack_env(services, data_dir, s3_endpoint, queue=queue, **env)
        return cls(services, log_dir, full_env, ServerProc(full_env, log_dir))

    def configure(self, **env: str) -> None:
        """Set environment variables of the server and the workers (before they start)."""
        self.env.update(env)

    def start(self, workers: int = 1, *, server: bool = True, warm: bool = True) -> None:
        """Start the server and the workers side by side (each takes seconds to load)."""
        self.workers = [WorkerProc(self.env, self.log_dir, i + 1) for i in range(workers)]
        if server:
            self.server.start(wait_ready=False)
        errors: list[BaseException] = []

        def start_worker(worker: WorkerProc) -> None:
            try:
                worker.start()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start_worker, args=(w,)) for w in self.workers]
        for t in threads:
            t.start()
        if server:
            self.server.wait_healthy(90)
        for t in threads:
            t.join(120)
        if not hasattr(self, "_watching"):
            self.watch_logs()
        if errors:
            raise errors[0]
        if server and warm:
            try:
                self.server.warm_up()
            except Exception as exc:
                raise RuntimeError(
                    f"the fresh server did not open its first session ({exc!r}); it froze? "
                    "log:\n" + "\n".join(self.server.log_text().splitlines()[-15:])) from exc

    def watch_logs(self, limit: int = 4 * MAX_LOG_BYTES) -> None:
        """Kill a process whose log runs away (a tight error loop writes hundreds of MB a
        minute): the test then fails on the log size instead of filling the disk."""
        self._watching = threading.Event()

        def watch() -> None:
            while not self._watching.wait(1.0):
                for proc in [self.server, *self.workers]:
                    with contextlib.suppress(OSError):
                        if proc.alive and proc.log_path.stat().st_size > limit:
                            self.runaway.append(f"{proc.log_path.name} passed {limit} bytes: "
                                                "process killed")
                            proc.kill()

        threading.Thread(target=watch, daemon=True, name="log-watch").start()

    def stop(self) -> None:
        if hasattr(self, "_watching"):
            self._watching.set()
        with contextlib.suppress(Exception):
            self.server.stop()
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.stop()
        self.server.kill()
        for worker in self.workers:
            worker.kill()

    def oversized_logs(self) -> list[str]:
        return self.runaway + oversized_logs(self.log_dir)

    def shrink_logs(self, keep: int = 2 * MAX_LOG_BYTES) -> None:
        """Cut oversized logs down to their first ``keep`` bytes (enough to diagnose)."""
        for path in self.log_dir.glob("*.log"):
            with contextlib.suppress(OSError):
                if path.stat().st_size > keep:
                    with path.open("r+b") as f:
                        f.truncate(keep)

    def log_excerpt(self, needle: str, limit: int = 5) -> list[str]:
        """Lines of the process logs that contain ``needle`` (for failure messages)."""
        found = []
        for path in sorted(self.log_dir.glob("*.log")):
            with path.open(errors="replace") as f:
                for line in f:
                    if needle in line:
                        found.append(f"{path.name}: {line.rstrip()[:300]}")
                        if len(found) >= limit:
                            return found
        return found


class LatencyProxy:
    """A TCP proxy in front of a service that delays every new connection by ``delay`` s (a
    far or busy Redis): widens races around the first use of a connection."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> LatencyProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Tracked from the start and closed on every path: a connection still waiting out its
        # delay when the proxy stops must not leak its socket.
        me = asyncio.current_task()
        assert me is not None
        self._tasks.add(me)
        up_writer: asyncio.StreamWriter | None = None
        try:
            await asyncio.sleep(self.delay)
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    "127.0.0.1", self.target_port
                )
            except OSError:
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer),
                                 return_exceptions=True)
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(me)
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(w.wait_closed(), 1)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 3)


async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy one direction of a proxied connection until it ends."""
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        dst.close()


class Probe:
    """Polls an HTTP path of the server and keeps (time, status or None, latency)."""

    def __init__(self, base_url: str, path: str, *, every: float = 0.25,
                 timeout: float = 2.0) -> None:
        self.url = base_url + path
        self.every = every
        self.timeout = timeout
        self.samples: list[tuple[float, int | None, float]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Probe:
        self._task = asyncio.create_task(self._run(), name=f"probe {self.url}")
        return self

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            while True:
                started = time.time()
                status: int | None
                try:
                    status = (await http.get(self.url)).status_code
                except httpx.HTTPError:
                    status = None
                self.samples.append((started, status, time.time() - started))
                await asyncio.sleep(max(0.0, self.every - (time.time() - started)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def failures(self, ok: int = 200, since: float = 0, until: float = float("inf")) -> list[
            tuple[float, int | None, float]]:
        return [s for s in self.samples if since <= s[0] <= until and s[1] != ok]

    def longest_silence(self) -> float:
        """Longest time between two answers (any status) of the server."""
        answered = [t + lat for t, status, lat in self.samples if status is not None]
        if len(answered) < 2:
            return float("inf")
        return max(b - a for a, b in itertools.pairwise(answered))

    def max_latency(self) -> float:
        return max((lat for _, _, lat in self.samples), default=0.0)

    def statuses(self, since: float, until: float) -> list[int | None]:
        return [status for t, status, _ in self.samples if since <= t <= until]


async def checked(stack: FaultStack, sessions: list[LoadSession], *,
                  allowed_closes: set[int | None] | None = None) -> Verdict:
    """The invariants, re-reading the database (up to 10 s) while rows are missing or differ:
    a worker records a cancelled scan's outcome just after the client saw its scan.done."""
    deadline = time.monotonic() + 10
    while True:
        rows = await asyncio.to_thread(db_rows, stack.services.pg, session_ids(sessions))
        verdict = check_sessions(sessions, rows, allowed_closes=allowed_closes)
        if verdict or time.monotonic() > deadline or not any(
                "no row" in x or "row says" in x for x in verdict.violations):
            return verdict
        await asyncio.sleep(0.5)


async def settle(load: Load, stack: FaultStack, *, timeout: float = 30,
                 allowed_closes: set[int | None] | None = None,
                 sessions: list[LoadSession] | None = None) -> Verdict:
    """Stop the load, wait (bounded) for running scans to end, then check the invariants,
    re-reading the database until rows written just after scan.done are there."""
    stuck = await load.finish(timeout)
    chosen = sessions if sessions is not None else load.sessions
    verdict = await checked(stack, chosen, allowed_closes=allowed_closes)
    if stuck:
        verdict.violations.insert(0, f"sessions still unsettled after {timeout} s: {stuck}")
    verdict.violations.extend(f"log too big: {x}" for x in stack.oversized_logs())
    return verdict


def summarise(name: str, tmp: Path, verdict: Verdict, **extra: Any) -> None:
    record_summary(name, tmp, {"invariants_ok": bool(verdict),
                               "violations": verdict.violations[:20],
                               "n_violations": len(verdict.violations), **verdict.stats,
                               **extra})
