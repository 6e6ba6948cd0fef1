"""What one machine sustains: the highest rate of real-photo scans with p99 time to
``scan.classified`` under 300 ms and no errors, against the classifier's own limit.

    .venv/bin/python bench/capacity.py --mode embedded
    .venv/bin/python bench/capacity.py --mode distributed --workers 2
    .venv/bin/python bench/capacity.py --mode embedded --hold 5 --max-steps 2   # smoke

1. **Physical limit.** The embedded classifier alone, no server: ``classify_bytes`` (safe
   decode, preprocess, backbone, head) over the same photos the users send, for
   ``--limit-seconds`` each, in one thread, in one thread per core inside one process (as the
   server runs it: ``asyncio.to_thread`` with one onnxruntime thread per call), and in one
   process per core (as N workers would). The limit is the best of the layouts that use every
   core; the ratio is also given against the mode's own layout.
2. **Step search.** The real server (``bench/orchestration.py``: embedded, or distributed with
   ``--workers`` Celery workers, PostgreSQL, RabbitMQ and S3 on moto) with the per-address and
   per-user caps lifted, and the harness (``wastecoach loadtest --scenario scan``, closed-loop
   users thinking ``--think`` seconds between scans) at rising offered rates: each step holds
   ``--hold`` seconds after its users have started. The search stops at the first step whose p99
   time to ``scan.classified`` is over ``--p99-ms``, that met any error, or whose achieved rate
   did not rise; then it bisects ``--refine`` times between the last good and that step.
3. While each step runs, every process's ``/metrics`` (API and workers), the machine's CPU
   (``/proc/stat``) and memory (``/proc/meminfo``) and, distributed, the depth of the scan queue
   (a passive declare on RabbitMQ) are sampled, so the first failing step says what ran out.

Writes ``--out`` (default ``loadtest-reports/capacity-<mode>-<UTC>/``): ``capacity.json``,
each step's harness report under ``steps/NN/``, and the best step's PNG plots copied to the
top. The load generator runs on the same cores as the server and is counted in the CPU figures.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The classifier's limit is measured as the server runs it: with numpy's OpenBLAS on one thread
# (set before anything imports numpy; the spawned limit processes inherit it).
from server.cli import one_blas_thread  # noqa: E402

one_blas_thread()

from bench.orchestration import Stack, start_stack  # noqa: E402
from server.loadtest.launcher import run_and_report  # noqa: E402
from server.loadtest.photos import MAX_PHOTOS  # noqa: E402
from server.loadtest.scrape import parse  # noqa: E402
from server.vision.dataset import list_samples, split  # noqa: E402

DEFAULT_PHOTOS = ROOT.parent / "shared/data/trashnet"


# ---------------------------------------------------------------------------- photos


def pick_photos(source: Path, into: Path) -> list[Path]:
    """The photos of one run, copied into ``into``: a photo folder as the harness reads it
    (at most MAX_PHOTOS), so the limit and the server see the same files. A data set laid out
    as ``<class>/`` folders gives its held-out split, taken evenly across classes."""
    try:
        samples = split(list_samples(source))[1]
        paths = [s.path for s in samples]
    except (FileNotFoundError, ValueError):
        paths = []
    if not paths:
        paths = sorted(p for p in source.rglob("*")
                       if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    if not paths:
        raise SystemExit(f"--photos {source}: no photos in it")
    stride = max(1, math.ceil(len(paths) / MAX_PHOTOS))
    chosen = paths[::stride][:MAX_PHOTOS]
    into.mkdir(parents=True, exist_ok=True)
    copies = []
    for n, path in enumerate(chosen):
        copy = into / f"{n:03d}-{path.parent.name}-{path.name}"
        shutil.copyfile(path, copy)
        copies.append(copy)
    return copies


# ---------------------------------------------------------------------------- physical limit


def _classify_for(blobs: list[bytes], seconds: float, start: Any) -> tuple[int, float]:
    """Classify photos round-robin for ``seconds`` after ``start`` (a barrier) lets go."""
    from server.vision.embedded import EmbeddedClassifier

    classifier = EmbeddedClassifier(threads=1)
    classifier.load()
    for data in blobs[:5]:  # first runs allocate onnxruntime's arenas
        classifier.classify_bytes(data)
    start.wait()
    began = time.perf_counter()
    done = 0
    while time.perf_counter() - began < seconds:
        classifier.classify_bytes(blobs[done % len(blobs)])
        done += 1
    return done, time.perf_counter() - began


def _process_entry(blobs: list[bytes], seconds: float, start: Any, results: Any) -> None:
    results.put(_classify_for(blobs, seconds, start))


def limit_threads(blobs: list[bytes], threads: int, seconds: float) -> float:
    """Images per second with ``threads`` threads in this process, one classifier shared as
    the server shares it (its calls are lock-free after loading)."""
    from server.vision.embedded import EmbeddedClassifier

    classifier = EmbeddedClassifier(threads=1)
    classifier.load()
    for data in blobs[:5]:
        classifier.classify_bytes(data)
    barrier = threading.Barrier(threads)

    def run() -> tuple[int, float]:
        barrier.wait()
        began = time.perf_counter()
        done = 0
        while time.perf_counter() - began < seconds:
            classifier.classify_bytes(blobs[(done * threads) % len(blobs)])
            done += 1
        return done, time.perf_counter() - began

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda _: run(), range(threads)))
    return sum(done / elapsed for done, elapsed in results)


def limit_processes(blobs: list[bytes], processes: int, seconds: float) -> float:
    """Images per second with ``processes`` processes, each with its own classifier."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    procs = [context.Process(target=_process_entry, args=(blobs, seconds, barrier, results))
             for _ in range(processes)]
    for proc in procs:
        proc.start()
    try:
        got = [results.get(timeout=seconds + 300) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    return float(sum(done / elapsed for done, elapsed in got))


def physical_limit(photos: list[Path], seconds: float) -> dict[str, Any]:
    blobs = [p.read_bytes() for p in photos]
    cores = os.cpu_count() or 1
    figures: dict[str, Any] = {"cores": cores, "seconds_each": seconds,
               "threads_1": limit_threads(blobs, 1, seconds)}
    figures[f"threads_{cores}"] = limit_threads(blobs, cores, seconds)
    figures[f"processes_{cores}"] = limit_processes(blobs, cores, seconds)
    best = max((f"threads_{cores}", f"processes_{cores}"), key=lambda k: figures[k])
    figures["limit_images_per_s"] = figures[best]
    figures["limit_layout"] = best
    return figures


# ---------------------------------------------------------------------------- sampling


def _proc_stat() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def _mem_available() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return float(line.split()[1]) * 1024
    return float("nan")


def queue_depth(broker_url: str, queue: str) -> int | None:
    """Messages ready in ``queue`` (a passive declare: it never creates the queue)."""
    from kombu.connection import Connection

    try:
        with Connection(broker_url, connect_timeout=3) as conn:
            channel = conn.channel()
            _, count, _ = channel.queue_declare(queue=queue, passive=True)
            channel.close()
            return int(count)
    except Exception:
        # An absent queue or an unreachable broker makes the depth unknown, never the run fail.
        return None


@dataclass
class Sampler:
    """Samples the stack every ``interval`` seconds on a thread of its own."""

    stack: Stack
    interval: float = 2.0
    samples: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def one(self) -> dict[str, Any]:
        busy, total = _proc_stat()
        row: dict[str, Any] = {"t": time.time(), "busy": busy, "total": total,
                               "mem_available": _mem_available(), "procs": {}}
        for name, url in self.stack.metrics.items():
            try:
                sample = parse(httpx.get(url, timeout=5).text, row["t"])
            except httpx.HTTPError:
                continue
            row["procs"][name] = {"rss": sample.rss_bytes, "cpu": sample.cpu_seconds,
                                  "sessions": sample.sessions_open}
        if self.stack.queue and self.stack.broker_url:
            row["queue"] = queue_depth(self.stack.broker_url, self.stack.queue)
        row["loadgen_cpu"] = self.loadgen_cpu()
        return row

    def loadgen_cpu(self) -> float:
        """CPU seconds of this process's children that are not the server: the harness's
        Locust processes, which share the cores with what they measure."""
        import psutil  # Locust's own dependency, so present wherever the harness runs

        server: set[int] = set()
        for pid in self.stack.pids:
            try:
                server.add(pid)
                server.update(c.pid for c in psutil.Process(pid).children(recursive=True))
            except psutil.Error:
                continue
        used = 0.0
        for child in psutil.Process().children(recursive=True):
            if child.pid in server:
                continue
            try:
                times = child.cpu_times()
            except psutil.Error:
                continue
            used += times.user + times.system
        return used

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.one())

    def __enter__(self) -> Sampler:
        self.samples.append(self.one())
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(self.one())

    def summary(self, loadgen_cpu_s: float, window: tuple[float, float] | None) -> dict[str, Any]:
        """Rates over ``window`` (Unix times: the held part of the step), from the last sample
        before it to the first after it, else over the whole step; the load generator's over
        the whole step (its CPU time is known once it has exited)."""
        held = self.samples
        if window is not None:
            times = [s["t"] for s in self.samples]
            start = max((i for i, t in enumerate(times) if t <= window[0]), default=0)
            end = min((i for i, t in enumerate(times) if t >= window[1]), default=len(times) - 1)
            if end > start:
                held = self.samples[start:end + 1]
        first, last = held[0], held[-1]
        span = max(last["t"] - first["t"], 1e-9)
        whole = max(self.samples[-1]["t"] - self.samples[0]["t"], 1e-9)
        cores = os.cpu_count() or 1
        ticks = last["total"] - first["total"]
        out: dict[str, Any] = {
            "seconds": span,
            "machine_busy_cores": cores * (last["busy"] - first["busy"]) / ticks if ticks else None,
            # Locust's processes come and go with the step: over the held part where they lived
            # through it, else their whole CPU time over the whole step (known at their exit).
            "loadgen_cores": (last["loadgen_cpu"] - first["loadgen_cpu"]) / span
            if held is not self.samples and last["loadgen_cpu"] >= first["loadgen_cpu"] > 0
            else loadgen_cpu_s / whole,
            "mem_available_min_bytes": min(s["mem_available"] for s in self.samples),
            "mem_total_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "procs": {},
        }
        for name in self.stack.metrics:
            seen = [s["procs"][name] for s in held if name in s["procs"]]
            cpu = [p["cpu"] for p in seen if p["cpu"] is not None]
            out["procs"][name] = {
                "cores": (cpu[-1] - cpu[0]) / span if len(cpu) >= 2 else None,
                "rss_max_bytes": max((p["rss"] or 0 for p in seen), default=None),
            }
        depths = [s["queue"] for s in self.samples if s.get("queue") is not None]
        out["queue_depth_max"] = max(depths) if depths else None
        out["queue_depth_last"] = depths[-1] if depths else None
        out["window"] = list(window) if window is not None else None
        out["held_samples"] = len(held)
        out["samples"] = self.samples
        server = [p["cores"] for p in out["procs"].values() if p["cores"] is not None]
        out["server_cores"] = sum(server) if server else None
        return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------- steps


def run_step(stack: Stack, args: argparse.Namespace, photos: Path, rate: float, n: int,
             out: Path) -> dict[str, Any]:
    """One step at an offered ``rate`` of scans per second, held ``args.hold`` seconds."""
    think_mean = sum(args.think) / 2
    # Closed-loop users: each starts a scan every think time plus the scan's own time.
    users = max(1, math.ceil(rate * (think_mean + args.scan_s)))
    ramp = min(args.ramp, args.hold)
    step_out = out / "steps" / f"{n:02d}"
    argv = ["--host", stack.base, "--scenario", "scan", "--photos", str(photos),
            "--users", str(users), "--spawn-rate", f"{max(1.0, users / ramp):g}",
            "--duration", f"{args.hold + ramp:g}s",
            "--think", f"{args.think[0]:g}", f"{args.think[1]:g}",
            "--metrics-url", stack.metrics["api"], "--metrics-interval", "2"]
    if args.loadgen_workers > 1:
        argv += ["--workers", str(args.loadgen_workers)]
    cpu_before = _children_cpu()
    # run_and_report forwards SIGTERM to its Locust child for the run; afterwards this
    # process must stop on SIGTERM again (and so shut the server down).
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with Sampler(stack) as sampler:
            code, report = run_and_report(argv, step_out)
    finally:
        signal.signal(signal.SIGTERM, handler)
    # The held part: after the ramp, before the stop (scans under way then still finish).
    held = [row for row in report.get("timeline", []) if ramp <= row["t"] < ramp + args.hold]
    window = (held[0]["unix"], held[-1]["unix"] + 1.0) if held else None
    resources = sampler.summary(_children_cpu() - cpu_before, window)
    achieved = (sum(row["scans_finished"] for row in held) / len(held) if held
                else report.get("rates", {}).get("scans_completed_per_s", 0.0))
    classified = report.get("latency_ms", {}).get("classified", {})
    accepted = report.get("latency_ms", {}).get("accepted", {})
    scans = report.get("scans", {})
    step = {
        "step": n, "offered_per_s": rate, "users": users, "exit_code": code,
        "achieved_per_s": achieved,
        "classified_p50_ms": classified.get("p50"), "classified_p99_ms": classified.get("p99"),
        "accepted_p99_ms": accepted.get("p99"),
        "classified_count": classified.get("count", 0),
        "errors": report.get("errors", {}), "fatal": report.get("fatal", []),
        "scans": scans, "closes": report.get("closes", {}),
        "resources": resources, "report": str(step_out / "report.json"),
        "plots": report.get("plots", []),
    }
    step["failures"] = failures(step, args.p99_ms)
    return step


def failures(step: dict[str, Any], p99_ms: float) -> list[str]:
    why = []
    p99 = step["classified_p99_ms"]
    if p99 is None or not step["classified_count"]:
        why.append("no scan was classified")
    elif p99 > p99_ms:
        why.append(f"p99 classified {p99:.0f} ms > {p99_ms:.0f} ms")
    if step["errors"]:
        why.append("errors " + ", ".join(f"{k}×{v}" for k, v in step["errors"].items()))
    if step["fatal"]:
        why.append("fatal: " + "; ".join(step["fatal"]))
    bad = {k: v for k, v in step["scans"].items() if k != "completed" and v}
    if bad:
        why.append("scans " + ", ".join(f"{k}×{v}" for k, v in bad.items()))
    return why


def exhausted(step: dict[str, Any], workers: int, workers_of_loadgen: int) -> list[str]:
    """What ran out at this step, from what was sampled while it ran."""
    res = step["resources"]
    cores = os.cpu_count() or 1
    found = []
    busy = res.get("machine_busy_cores")
    if busy is not None and busy >= 0.9 * cores:
        parts = ", ".join(f"{k} {v['cores']:.2f}" for k, v in res["procs"].items()
                          if v["cores"] is not None)
        found.append(f"CPU: the machine was {busy:.2f} of {cores} cores busy ({parts}, "
                     f"load generator {res['loadgen_cores']:.2f}, the rest other processes)")
    # One process near a whole core is its event loop saturated, whatever the machine has
    # left: the server and each worker run their Python work on one loop.
    for name, proc in res["procs"].items():
        if proc["cores"] is not None and proc["cores"] >= 0.85:
            found.append(f"{name}: {proc['cores']:.2f} cores; its Python work runs on one "
                         "event loop (the classifier's threads add to the figure)")
    idle = [name for name, proc in res["procs"].items()
            if name.startswith("worker") and proc["cores"] is not None and proc["cores"] < 0.1]
    if idle and len(idle) < workers:
        found.append(f"idle worker(s) {', '.join(idle)} at under 0.1 core while the others "
                     "worked: they are not taking scans (see their logs)")
    if res["mem_available_min_bytes"] < 0.1 * res["mem_total_bytes"]:
        found.append(f"memory: {res['mem_available_min_bytes'] / 2**20:.0f} MiB left available")
    depth = res.get("queue_depth_max")
    if depth is not None and depth > 32 * workers:
        found.append(f"queue: up to {depth} scans waiting in RabbitMQ (the workers take "
                     f"{32 * workers} at once)")
    if res["loadgen_cores"] >= 0.8 * workers_of_loadgen:
        found.append(f"the load generator: {res['loadgen_cores']:.2f} cores for "
                     f"{workers_of_loadgen} Locust process(es), one core each at most; its "
                     "figures include its own waiting")
    gap = (step["classified_p99_ms"] or 0) - (step["accepted_p99_ms"] or 0)
    if not found and gap > 0.8 * (step["classified_p99_ms"] or 0) and step["classified_p99_ms"]:
        found.append(f"the pipeline: accepted → classified took {gap:.0f} ms of the p99 with "
                     "CPU, memory and queue to spare (waiting on a lock, a pool or I/O)")
    codes = {str(k) for k in step["closes"]}
    if "1013" in codes:
        found.append("send queues or connection caps: the server closed clients with 1013")
    return found or ["nothing sampled ran out (see the step's figures)"]


def search(stack: Stack, args: argparse.Namespace, photos: Path, out: Path) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []

    def step(rate: float) -> dict[str, Any]:
        result = run_step(stack, args, photos, rate, len(steps) + 1, out)
        steps.append(result)
        print(row(result), flush=True)
        return result

    rate = args.start_rate
    good: dict[str, Any] | None = None
    bad: dict[str, Any] | None = None
    while len(steps) < args.max_steps:
        result = step(rate)
        if not result["failures"] and good is not None and \
                result["achieved_per_s"] <= 1.05 * good["achieved_per_s"]:
            result["failures"].append(
                f"achieved rate stopped rising ({result['achieved_per_s']:.1f}/s after "
                f"{good['achieved_per_s']:.1f}/s)")
        if result["failures"]:
            bad = result
            break
        good = result
        rate *= args.factor
    for _ in range(args.refine if bad is not None and good is not None else 0):
        assert good is not None and bad is not None
        middle = (good["offered_per_s"] + bad["offered_per_s"]) / 2
        result = step(middle)
        if not result["failures"] and result["achieved_per_s"] <= good["achieved_per_s"]:
            result["failures"].append("achieved rate did not rise")
        if result["failures"]:
            bad = result
        else:
            good = result
    return steps


HEADER = (f"{'step':>4} {'offered/s':>9} {'users':>6} {'achieved/s':>10} {'p50 cls':>8} "
          f"{'p99 cls':>8} {'busy cores':>10}  verdict")


def row(step: dict[str, Any]) -> str:
    res = step["resources"]
    busy = res.get("machine_busy_cores")

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}"

    return (f"{step['step']:>4} {step['offered_per_s']:>9.1f} {step['users']:>6} "
            f"{step['achieved_per_s']:>10.1f} {ms(step['classified_p50_ms']):>8} "
            f"{ms(step['classified_p99_ms']):>8} {'-' if busy is None else f'{busy:.2f}':>10}  "
            + ("; ".join(step["failures"]) or "ok"))


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["embedded", "distributed"], default="embedded")
    parser.add_argument("--workers", type=int, default=1,
                        help="Celery worker processes (distributed mode)")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS,
                        help="photo folder; a <class>/ data set gives its held-out split")
    parser.add_argument("--hold", type=float, default=60.0,
                        help="seconds each step is held at its rate, after the ramp")
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds to start a step's users")
    parser.add_argument("--start-rate", type=float, default=5.0, help="scans/s of the first step")
    parser.add_argument("--factor", type=float, default=1.5, help="rate of a step over the last")
    parser.add_argument("--max-steps", type=int, default=12)
    parser.add_argument("--refine", type=int, default=2,
                        help="bisections between the last good and the first failing step")
    parser.add_argument("--p99-ms", type=float, default=300.0)
    parser.add_argument("--think", type=float, nargs=2, default=[1.0, 3.0],
                        metavar=("MIN", "MAX"), help="users' pause between scans")
    parser.add_argument("--scan-s", type=float, default=0.5,
                        help="expected seconds of a scan, to size a step's users")
    parser.add_argument("--loadgen-workers", type=int, default=1,
                        help="Locust worker processes of the harness")
    parser.add_argument("--limit-seconds", type=float, default=20.0,
                        help="seconds each layout of the physical limit runs (0: skip)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.factor <= 1 or args.hold <= 0 or args.start_rate <= 0:
        parser.error("--factor must be over 1, --hold and --start-rate over 0")

    # Stopped from outside: unwind, so the server, its workers and the scratch database go.
    signal.signal(signal.SIGTERM, _exit_on_term)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "loadtest-reports" / f"capacity-{args.mode}-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(), "mode": args.mode,
        "workers": args.workers if args.mode == "distributed" else 0,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    with tempfile.TemporaryDirectory(prefix="wc-capacity-") as tmp:
        photo_dir = Path(tmp) / "photos"
        photos = pick_photos(args.photos, photo_dir)
        print(f"{len(photos)} photos from {args.photos}; {os.cpu_count()} cores; "
              f"mode {args.mode}" + (f", {args.workers} workers" if args.mode == "distributed"
                                     else ""), flush=True)
        if args.limit_seconds > 0:
            limit = physical_limit(photos, args.limit_seconds)
            result["physical_limit"] = limit
            cores = limit["cores"]
            print(f"classifier alone: 1 thread {limit['threads_1']:.1f}/s, {cores} threads "
                  f"{limit[f'threads_{cores}']:.1f}/s, {cores} processes "
                  f"{limit[f'processes_{cores}']:.1f}/s images/s", flush=True)
        # start_stack lifts the per-user scan budgets and the per-address caps (every user
        # is a new guest from 127.0.0.1); the stages are the real ones.
        with start_stack(args.mode, stages_factory=None, workers=args.workers) as stack:
            wait_metrics(stack)
            print(HEADER, flush=True)
            steps = search(stack, args, photo_dir, out)
    result["steps"] = steps
    passed = [s for s in steps if not s["failures"]]
    best = max(passed, key=lambda s: s["achieved_per_s"]) if passed else None
    first_bad = next((s for s in steps if s["failures"]), None)
    result["best"] = None if best is None else {
        "step": best["step"], "scans_per_s": best["achieved_per_s"],
        "classified_p99_ms": best["classified_p99_ms"]}
    if first_bad is not None:
        result["first_failing_step"] = {"step": first_bad["step"], "why": first_bad["failures"],
                                        "ran_out": exhausted(first_bad, max(1, args.workers),
                                                           args.loadgen_workers)}
    else:
        result["first_failing_step"] = None
    if best is not None and "physical_limit" in result:
        limit = result["physical_limit"]
        cores = limit["cores"]
        # The server's own layout: one process classifying in threads (embedded, or a single
        # worker), or one process per core once there are as many workers.
        own = (f"processes_{cores}" if args.mode == "distributed" and args.workers >= cores
               else f"threads_{cores}")
        result["ratio_to_limit"] = best["achieved_per_s"] / limit["limit_images_per_s"]
        result["own_layout"] = own
        result["ratio_to_own_layout"] = best["achieved_per_s"] / limit[own]
    if best is not None:
        # The harness names its plots relative to the step's folder.
        step_dir = Path(best["report"]).parent
        result["plots"] = []
        for name in best["plots"]:
            if (step_dir / name).is_file():
                shutil.copyfile(step_dir / name, out / name)
                result["plots"].append(str(out / name))
    (out / "capacity.json").write_text(json_dump(result))
    print()
    print(summary(result))
    print(f"result: {out / 'capacity.json'}")
    return 0 if best is not None else 1


def _exit_on_term(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def wait_metrics(stack: Stack) -> None:
    """The workers are up once their /metrics answers (the API once it is ready)."""
    deadline = time.monotonic() + 120
    for url in stack.metrics.values():
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer within 120 s")
            time.sleep(0.5)


def json_dump(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, indent=2, default=str) + "\n"


def summary(result: dict[str, Any]) -> str:
    lines = []
    best = result["best"]
    if best is None:
        lines.append("no step sustained its rate with p99 classified under the target and no "
                     "errors: start lower (--start-rate)")
    else:
        lines.append(f"sustained: {best['scans_per_s']:.1f} scans/s (step {best['step']}, "
                     f"p99 classified {best['classified_p99_ms']:.0f} ms)")
    limit = result.get("physical_limit")
    if limit is not None:
        lines.append(f"physical limit: {limit['limit_images_per_s']:.1f} images/s "
                     f"({limit['limit_layout']})")
    if "ratio_to_limit" in result:
        lines.append(f"ratio to the limit: {result['ratio_to_limit']:.0%}"
                     + (f"; to the mode's own layout: {result['ratio_to_own_layout']:.0%}"
                        if "ratio_to_own_layout" in result else ""))
    bad = result["first_failing_step"]
    if bad is not None:
        lines.append(f"first failing step {bad['step']}: {'; '.join(bad['why'])}")
        lines.extend(f"  ran out: {what}" for what in bad["ran_out"])
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
