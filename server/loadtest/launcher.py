"""``wastecoach loadtest``: check the inputs, run Locust on the locustfile, never hang.

This process does not import Locust. It checks what it can before anything starts (the
options, the photos, that the server answers), then runs Locust in a child process
(``python -m locust -f server/loadtest/locustfile.py ...``), headless by default, with a hard
deadline: a run that overstays its duration by more than a grace period is stopped, then
killed, and reported as such. The report is the locustfile's; when Locust never got to write
one (the server unreachable, the child killed), this process writes a ``report.json`` saying
why, so a script always finds one.

Exit status: 0 for a run with no error; 1 when the run met errors or stopped as failed (the
report says which); 2 when it could not start (bad options, no photos, the server unreachable).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from server.loadtest.options import PHOTO_SCENARIOS, add_scenario_arguments, positive_int
from server.loadtest.photos import PhotoError, load_photos

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
#: What Locust may take beyond --duration: spawning, finishing the scans under way (its
#: --stop-timeout), the workers' last reports, the report itself.
GRACE_S = 90.0
STOP_TIMEOUT_S = 15.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wastecoach loadtest",
        description="Load-test a Waste Coach server with simulated app users (Locust).",
        epilog="Workers on other machines: run `wastecoach loadtest --worker --master-host "
               "HOST` there (same code, and the photos at the same path), and "
               "`wastecoach loadtest --master --expect-workers N ...` here.",
    )
    p.add_argument("--host", default="http://127.0.0.1:8000",
                   help="the server's base URL (default http://127.0.0.1:8000)")
    p.add_argument("--users", "-u", type=positive_int, default=10,
                   help="simulated users at once (default 10)")
    p.add_argument("--spawn-rate", "-r", type=float, default=None,
                   help="users started per second (default: all within 10 s)")
    p.add_argument("--web", action="store_true",
                   help="open Locust's web UI (http://127.0.0.1:8089) instead of running headless")
    p.add_argument("--workers", type=int, default=0,
                   help="run N local Locust worker processes under a master (one per core "
                        "the load generator may use)")
    p.add_argument("--master", action="store_true",
                   help="be the master of workers started elsewhere (--expect-workers)")
    p.add_argument("--expect-workers", type=positive_int, default=1)
    p.add_argument("--master-bind-port", type=int, default=5557)
    p.add_argument("--worker", action="store_true",
                   help="be a worker of a master elsewhere (--master-host); the master sends "
                        "the scenario's options")
    p.add_argument("--master-host", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=5557)
    add_scenario_arguments(p)
    return p


def locust_argv(args: argparse.Namespace, out: Path) -> list[str]:
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    if args.worker:
        return [*argv, "--worker", "--master-host", args.master_host,
                "--master-port", str(args.master_port)]
    rate = args.spawn_rate if args.spawn_rate else max(1.0, args.users / 10)
    argv += ["-H", args.host, "-u", str(args.users), "-r", f"{rate:g}",
             "--stop-timeout", f"{STOP_TIMEOUT_S:g}", "--only-summary"]
    if not args.web:
        argv.append("--headless")
    if args.workers > 0:
        argv += ["--processes", str(args.workers)]
    elif args.master:
        argv += ["--master", "--expect-workers", str(args.expect_workers),
                 "--master-bind-port", str(args.master_bind_port)]
    argv += ["--scenario", args.scenario, "--out", str(out), "--locale", args.locale,
             "--lat", repr(args.lat), "--lon", repr(args.lon),
             "--think", repr(args.think[0]), repr(args.think[1]),
             "--chat-questions", str(args.chat_questions),
             "--live-seconds", repr(args.live_seconds), "--live-fps", repr(args.live_fps),
             "--timeout", repr(args.timeout), "--scan-timeout", repr(args.scan_timeout),
             "--reconnect-attempts", str(args.reconnect_attempts),
             "--metrics-interval", repr(args.metrics_interval)]
    for flag, value in (("--photos", args.photos), ("--metrics-url", args.metrics_url),
                        ("--tokens", args.tokens)):
        if value:
            argv += [flag, os.path.abspath(value) if flag != "--metrics-url" else value]
    if args.upload:
        argv.append("--upload")
    if args.duration:
        argv += ["--duration", repr(args.duration)]
    if args.scans:
        argv += ["--scans", str(args.scans)]
    return argv


#: What the harness's processes import beyond the runtime dependencies (the loadtest extra).
EXTRA_MODULES = ("locust", "hdrh", "matplotlib", "websocket", "prometheus_client")


def missing_extra() -> str | None:
    """Why the harness cannot run here, or None: looked up, not imported (Locust patches
    what it imports into)."""
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        return (f"the load-test harness needs the loadtest extra ({', '.join(missing)} not "
                "installed): pip install -e '.[loadtest]', or scripts/_venv.sh dev")
    return None


def preflight(args: argparse.Namespace) -> str | None:
    """Why the run cannot start, or None."""
    problem = missing_extra()
    if problem is not None:
        return problem
    if args.scenario in PHOTO_SCENARIOS:
        try:
            load_photos(args.photos)
        except PhotoError as exc:
            return str(exc)
    if args.tokens and not Path(args.tokens).is_file():
        return f"--tokens {args.tokens}: no such file"
    if not args.host.startswith(("http://", "https://")):
        return f"--host {args.host}: give the server's base URL, http:// or https://"
    try:
        resp = httpx.get(args.host.rstrip("/") + "/healthz", timeout=args.timeout)
    except httpx.HTTPError as exc:
        return f"cannot reach {args.host}: {exc or type(exc).__name__}"
    if resp.status_code != 200:
        return (f"{args.host}/healthz answered HTTP {resp.status_code}: "
                "is this a Waste Coach server?")
    return None


def write_failure(out: Path, args: argparse.Namespace, reason: str) -> None:
    """A report for a run Locust did not report on (it never started, or was killed)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    if path.exists():
        # Locust wrote the figures; add why the run ended this way.
        data: dict[str, Any] = json.loads(path.read_text())
        data["ok"] = False
        data.setdefault("fatal", []).append(reason)
    else:
        data = {"report_version": 1, "scenario": args.scenario, "host": args.host,
                "users": args.users, "ok": False, "fatal": [reason], "latency_ms": {},
                "rates": {}, "scans": {}, "errors": {}, "closes": {}, "resumes": {},
                "started_at": datetime.now(UTC).isoformat(), "plots": []}
    path.write_text(json.dumps(data, indent=2) + "\n")


def raise_open_files_limit(users: int) -> str | None:
    """Every user holds a WebSocket and an HTTP connection: the soft limit on open files
    (often 1,024) goes up to the hard one, which the Locust processes inherit. Returns a
    warning when even that is too few for ``users``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    needed = 2 * users + 256
    if soft != resource.RLIM_INFINITY and soft < needed:
        return (f"{users} users need about {needed} open files, and this process may open "
                f"{soft} (ulimit -n): raise the hard limit, or spread the users over machines "
                "(--master / --worker)")
    return None


def default_out() -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path("loadtest-reports") / stamp


def run(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = Path(args.out) if args.out else default_out()
    if args.worker and (problem := missing_extra()) is not None:
        print(f"wastecoach loadtest: {problem}", file=sys.stderr)
        return 2
    if not args.worker:
        problem = preflight(args)
        if problem is not None:
            print(f"wastecoach loadtest: {problem}", file=sys.stderr)
            write_failure(out, args, problem)
            print(f"report: {out / 'report.json'}", file=sys.stderr)
            return 2
    warning = raise_open_files_limit(args.users)
    if warning is not None:
        print(f"wastecoach loadtest: warning: {warning}", file=sys.stderr)
    command = locust_argv(args, out)
    deadline = None
    if not args.web and not args.worker:
        limit = args.duration or (600.0 if args.scans else 60.0)
        deadline = time.monotonic() + limit + GRACE_S
    child = subprocess.Popen(command)

    def forward_term(signum: int, _frame: object) -> None:
        # Stopped from outside (a supervisor, `timeout`, kill): Locust stops on SIGTERM and
        # still writes the report; it must not live on without this process.
        child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward_term)
    try:
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            try:
                return _finish(child.wait(timeout=left if left is None else max(left, 0.1)))
            except subprocess.TimeoutExpired:
                reason = (f"the run overstayed its duration by {GRACE_S:g} s and was stopped; "
                          "the figures are those Locust wrote, if any")
                print(f"wastecoach loadtest: {reason}", file=sys.stderr)
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
                write_failure(out, args, reason)
                return 1
    except KeyboardInterrupt:
        # Ctrl+C at a terminal reached Locust too (same process group), and it stops and
        # writes the report; a SIGINT sent to this process alone did not: pass it on then.
        try:
            return _finish(child.wait(timeout=5))
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGTERM)
        try:
            return _finish(child.wait(timeout=60))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            write_failure(out, args, "interrupted, and Locust did not stop within 60 s")
            return 1


def run_and_report(argv: list[str], out: Path) -> tuple[int, dict[str, Any]]:
    """For scripts (``bench/capacity.py``): runs a load test as ``wastecoach loadtest ARGV``
    would, its report in ``out``, and returns the exit status and the report (``report.json``,
    the same whatever the outcome: a run that could not start says why in ``fatal``). Locust
    runs in a child process, never in the caller's."""
    code = run([*argv, "--out", str(out)])
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    return code, report


def _finish(code: int) -> int:
    # Locust's own failure codes (a crash, an unhandled error) are failures of the run too.
    return 0 if code == 0 else (code if code in (1, 2) else 1)


def main() -> None:
    sys.exit(run())
