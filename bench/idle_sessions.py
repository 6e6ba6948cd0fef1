"""Idle sessions: what one signed-in, heartbeating WebSocket session costs the server in memory.

Target (issue 17): 10,000 idle sessions held by one server process, under 20 KiB of server
memory each (the RSS growth over the idle server, divided by the sessions).

    .venv/bin/python bench/idle_sessions.py --sessions 10000 [--hold 30] [--trace 25]

It starts ``wastecoach serve`` (embedded, as served: uvicorn configured by ``server_config``)
as a subprocess with a fresh data directory, signs one guest in, opens a few sessions and closes
them (so that what the first session creates once, lazily, is in the baseline), reads the
server's RSS, then opens ``--sessions`` sessions from this process (asyncio and websockets,
many sessions per process). Each one signs in with ``session.start`` and sends ``ping`` every
``heartbeat_interval_s`` as the protocol asks; the server pings each one too (uvicorn's
WebSocket ping). After ``--hold`` seconds, which cover one round of heartbeats, the RSS is read
again. Every client comes from 127.0.0.1, so the per-address connection caps are lifted for the
run (they are not what is measured).

``--trace N`` (or ``WASTECOACH_BENCH_TRACE=N``) runs the server under tracemalloc instead and
prints the N largest allocations the sessions added, grouped by traceback (the server writes a
snapshot before and after when this script sends it SIGUSR1). tracemalloc's own bookkeeping
inflates the RSS of that run: read the per-session figure from a run without it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Sessions signing in at once: enough to open 10,000 in well under a minute on two cores,
#: few enough that the server's handshake queue never becomes what is measured (fewer under
#: tracemalloc, which slows the server several times over).
CONNECT_CONCURRENCY = 64
TRACED_CONCURRENCY = 8
SNAPSHOT_ENV = "WASTECOACH_BENCH_SNAPSHOT"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"the open-file limit is {hard}; {needed} are needed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


# --------------------------------------------------------------------------- the traced server


def serve_traced(frames: int) -> int:
    """The server, under tracemalloc; SIGUSR1 writes a numbered snapshot next to
    ``$WASTECOACH_BENCH_SNAPSHOT``."""
    tracemalloc.start(frames)
    base = Path(os.environ[SNAPSHOT_ENV])
    taken = [0]

    def dump(_signum: int, _frame: object) -> None:
        taken[0] += 1
        target = base.with_name(f"{base.name}.{taken[0]}")
        tracemalloc.take_snapshot().dump(str(target) + ".tmp")
        os.replace(str(target) + ".tmp", target)

    signal.signal(signal.SIGUSR1, dump)
    from server.cli import main as cli_main

    return cli_main(["serve"])


async def snapshot(proc: subprocess.Popen[bytes], base: Path, number: int) -> tracemalloc.Snapshot:
    target = base.with_name(f"{base.name}.{number}")
    proc.send_signal(signal.SIGUSR1)
    for _ in range(1200):
        if target.exists():
            return tracemalloc.Snapshot.load(str(target))
        await asyncio.sleep(0.25)
    raise RuntimeError("the server wrote no snapshot")


def print_top(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int,
              sessions: int) -> None:
    ignored = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = after.filter_traces(ignored).compare_to(before.filter_traces(ignored), "traceback")
    total = sum(s.size_diff for s in stats)
    print(f"\ntracemalloc: {total / 1024 / sessions:.2f} KiB per session traced "
          f"(Python allocations only); the {top} largest by traceback:")
    for stat in stats[:top]:
        print(f"\n{stat.size_diff / sessions:8.0f} B/session  {stat.count_diff / sessions:6.2f} "
              f"blocks/session  ({stat.size_diff / 1024:.0f} KiB in all)")
        for line in stat.traceback.format(limit=6, most_recent_first=True):
            print("    " + line)


# --------------------------------------------------------------------------- the clients


class Sessions:
    def __init__(self, ws_url: str, token: str, concurrency: int = CONNECT_CONCURRENCY) -> None:
        self.ws_url = ws_url
        self.concurrency = concurrency
        self.token = token
        self.sockets: list[object] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.heartbeat_s = 25.0
        self.pongs = 0
        self.closed = 0

    async def open_one(self) -> None:
        import websockets

        # The protocol's heartbeat is the ping message below, and the server pings each socket
        # too; websockets' own client pings would add a third, and on a busy machine their
        # 20 s timeout closed sessions that were only slow to be served.
        ws = await websockets.connect(self.ws_url, compression=None, max_size=2**20,
                                      open_timeout=600, ping_interval=None)
        await ws.send(json.dumps({"type": "session.start", "v": 1, "token": self.token,
                                  "locale": "ko"}))
        ready = json.loads(await ws.recv())
        if ready.get("type") != "session.ready":
            raise RuntimeError(f"not signed in: {ready}")
        self.heartbeat_s = float(ready["heartbeat_interval_s"])
        self.sockets.append(ws)
        self.tasks.append(asyncio.create_task(self._keep(ws)))

    async def _keep(self, ws: object) -> None:
        """Read whatever comes (rate limits, pongs); ping every heartbeat, at a random phase so
        that the pings of all sessions spread over the interval."""
        import random

        from websockets.asyncio.client import ClientConnection
        from websockets.exceptions import ConnectionClosed

        assert isinstance(ws, ClientConnection)

        async def read() -> None:
            async for message in ws:
                if '"pong"' in str(message):
                    self.pongs += 1

        reader = asyncio.create_task(read())
        try:
            await asyncio.sleep(random.uniform(0, self.heartbeat_s))
            while not reader.done():
                await ws.send('{"type":"ping"}')
                await asyncio.sleep(self.heartbeat_s)
        except ConnectionClosed:
            pass
        finally:
            self.closed += 1
            reader.cancel()

    async def open(self, count: int) -> None:
        gate = asyncio.Semaphore(self.concurrency)

        async def one() -> None:
            async with gate:
                await self.open_one()

        await asyncio.gather(*(one() for _ in range(count)))

    async def close(self) -> None:
        from websockets.asyncio.client import ClientConnection

        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        gate = asyncio.Semaphore(256)

        async def close(ws: object) -> None:
            assert isinstance(ws, ClientConnection)
            async with gate:
                await ws.close()

        await asyncio.gather(*(close(ws) for ws in self.sockets), return_exceptions=True)
        self.sockets.clear()
        self.tasks.clear()


async def sessions_open(base_url: str) -> float:
    import httpx

    async with httpx.AsyncClient() as http:
        # Generous: on a shared machine the loop may be busy with thousands of heartbeats.
        text = (await http.get(base_url + "/metrics", timeout=120)).text
    for line in text.splitlines():
        if line.startswith("wastecoach_ws_sessions_open "):
            return float(line.split()[1])
    return -1


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base_url: str
    data: Path

    @property
    def log(self) -> Path:
        return self.data / "server.log"


def start_server(sessions: int, trace: int, frames: int) -> Server:
    from tests.conftest import free_port

    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="wc-idle-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WASTECOACH_")}
    cap = str(sessions + 1000)
    env.update(
        WASTECOACH_DATA_DIR=str(data),
        WASTECOACH_PORT=str(port),
        WASTECOACH_LOG_LEVEL="warning",
        WASTECOACH_SESSION__MAX_CONNECTIONS_PER_ADDRESS=cap,
        WASTECOACH_SESSION__MAX_UNAUTHENTICATED_PER_ADDRESS=cap,
        PYTHONPATH=str(ROOT),
    )
    if trace:
        env[SNAPSHOT_ENV] = str(data / "snapshot")
        command = [sys.executable, __file__, "--serve-traced", str(frames)]
    else:
        command = [sys.executable, "-m", "server.cli", "serve"]
    with (data / "server.log").open("wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Server(proc, f"http://127.0.0.1:{port}", data)


async def run(args: argparse.Namespace, server: Server) -> int:
    import httpx

    proc, base_url = server.proc, server.base_url
    # A terminated benchmark ends its run, and main() stops the server.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    trace = args.trace
    snapshot_base = server.data / "snapshot"
    async with httpx.AsyncClient(base_url=base_url) as http:
        # Start-up under tracemalloc takes minutes on two busy cores.
        deadline = time.monotonic() + 900
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + server.log.read_text()[-3000:])
            try:
                if (await http.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
        response = await http.post("/api/v1/auth/guest")
        response.raise_for_status()
        token = response.json()["access_token"]
    ws_url = base_url.replace("http://", "ws://") + "/api/v1/coach/ws"

    # What the first sessions create once (lazily imported code, pools, caches) belongs to
    # the idle server, not to each session.
    concurrency = TRACED_CONCURRENCY if trace else CONNECT_CONCURRENCY
    warm = Sessions(ws_url, token, concurrency)
    await warm.open(200)
    await asyncio.sleep(2)
    await warm.close()
    await asyncio.sleep(3)
    before_snapshot = await snapshot(proc, snapshot_base, 1) if trace else None
    before = rss_kib(proc.pid)

    sessions = Sessions(ws_url, token, concurrency)
    started = time.monotonic()
    await sessions.open(args.sessions)
    opened_in = time.monotonic() - started
    opened = rss_kib(proc.pid)
    await asyncio.sleep(args.hold)
    after = rss_kib(proc.pid)
    open_now = await sessions_open(base_url)
    after_snapshot = await snapshot(proc, snapshot_base, 2) if trace else None

    n = args.sessions
    print(f"sessions {n}: opened in {opened_in:.1f} s, held {args.hold:.0f} s "
          f"(heartbeat {sessions.heartbeat_s:.0f} s, {sessions.pongs} pongs, "
          f"{sessions.closed} closed); the server counts {open_now:.0f} open")
    print(f"server RSS: idle {before / 1024:.1f} MiB, all sessions open "
          f"{opened / 1024:.1f} MiB, after the hold {after / 1024:.1f} MiB: "
          f"{(after - before) / n:.1f} KiB per session"
          + (" (under tracemalloc)" if trace else ""))
    if before_snapshot is not None and after_snapshot is not None:
        print_top(before_snapshot, after_snapshot, trace, n)
    dropped = sessions.closed  # by the server, while held: the run does not count
    await sessions.close()
    return 0 if dropped == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--hold", type=float, default=30.0,
                        help="seconds to hold the sessions before reading the RSS")
    parser.add_argument("--trace", type=int,
                        default=int(os.environ.get("WASTECOACH_BENCH_TRACE", "0")),
                        help="print the N largest allocations by traceback (tracemalloc)")
    parser.add_argument("--frames", type=int, default=12, help="traceback depth (tracemalloc)")
    parser.add_argument("--serve-traced", type=int, metavar="FRAMES", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_traced is not None:
        return serve_traced(args.serve_traced)
    # Each session is a socket here and one in the server (which inherits this limit).
    raise_fd_limit(args.sessions + 1024)
    server = start_server(args.sessions, args.trace, args.frames)
    try:
        return asyncio.run(run(args, server))
    except asyncio.CancelledError:
        return 143
    finally:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.proc.kill()


if __name__ == "__main__":
    sys.exit(main())
