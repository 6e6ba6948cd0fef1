"""The locustfile of ``wastecoach loadtest``: Locust runs this file in each of its processes.

It adds the load test's options to Locust's parser, gives Locust the user class
(:class:`~server.loadtest.users.CoachUser`), and wires the run:

* every process that runs users records into its own :class:`Figures`; a Locust **worker**
  sends what it recorded to the master every two seconds and once more when it stops, as a
  Locust custom message (encoded HDR histograms and counts), and the **master** adds them up;
  a worker's last message reaches the master before the worker reports itself stopped, so the
  master's figures are complete when the run ends;
* the master (or the only process) keeps the run's clock: it prints a progress line, stops the
  run after ``--duration`` or ``--scans``, or at once when a user meets what stops the whole
  run (``Fatal``), scrapes ``--metrics-url``, and when Locust quits writes the report and sets
  the exit code (0 only for a run with no error at all).

Only the harness's own process ever imports this file (Locust patches the standard library with
gevent when it is imported); ``wastecoach loadtest`` starts that process.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from server.loadtest import report
from server.loadtest.options import PHOTO_SCENARIOS, add_scenario_arguments
from server.loadtest.photos import PhotoError, load_photos
from server.loadtest.scrape import Sample, ScrapeError, scrape, summarise
from server.loadtest.users import CoachUser, RunState

__all__ = ["CoachUser"]

log = logging.getLogger("wastecoach.loadtest")

#: The custom message a worker sends its figures in.
FIGURES_MESSAGE = "wastecoach_figures"
FLUSH_S = 2.0
PROGRESS_S = 5.0
#: When neither --duration nor --scans is given (headless), the run lasts this long.
DEFAULT_DURATION_S = 60.0
#: With --scans and no --duration, the run stops after this long whatever the count.
DEFAULT_SCANS_DURATION_S = 600.0


def _options(environment: Environment) -> Any:
    """The run's options (Locust's and the load test's), parsed."""
    return environment.parsed_options


class Clock:
    """The run as the master (or the only process) sees it."""

    started_wall: float | None = None
    started: float | None = None
    ended: float | None = None
    stopping = False
    stop_reason = ""
    workers_max = 0
    table = ""
    samples: list[Sample] = []  # noqa: RUF012 (one run per process)
    scrape_failures: dict[str, int] = {}  # noqa: RUF012
    greenlets: list[gevent.Greenlet] = []  # noqa: RUF012


def _add_options(parser: Any, **_: Any) -> None:
    add_scenario_arguments(parser)


def _on_init(environment: Environment, **_: Any) -> None:
    RunState.options = _options(environment)
    RunState.stop_run = lambda reason: _fatal(environment, reason)
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(FIGURES_MESSAGE, _absorb)


def _absorb(environment: Environment, msg: Any, **_: Any) -> None:
    try:
        RunState.figures.absorb(msg.data)
    except ValueError as exc:
        RunState.figures.fail(f"a worker sent figures this master cannot read: {exc}")
    if RunState.figures.fatal:
        _stop(environment, RunState.figures.fatal[0])
    _check_count(environment)


def _fatal(environment: Environment, reason: str) -> None:
    """A user met something that stops the whole run."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        # The master stops the run: tell it now, not at the next flush.
        runner.send_message(FIGURES_MESSAGE, RunState.figures.export())
    else:
        _stop(environment, reason)


def _stop(environment: Environment, reason: str) -> None:
    if Clock.stopping:
        return
    Clock.stopping = True
    Clock.stop_reason = reason
    log.warning("stopping the run: %s", reason)

    def stop_then_quit() -> None:
        runner = environment.runner
        assert runner is not None
        workers = list(runner.clients) if isinstance(runner, MasterRunner) else []
        # stop() waits for every worker to report itself stopped (their last figures come
        # before that); quit() then ends Locust, which writes the report (quitting).
        runner.stop()
        if isinstance(runner, MasterRunner):
            # A stopped worker is no longer on the master's list, so quit() would not tell it
            # to go: it would wait a minute for a master that is gone. Tell it here.
            for worker in workers:
                runner.send_message("quit", None, worker)
        runner.quit()

    gevent.spawn(stop_then_quit)


def _check_count(environment: Environment) -> None:
    wanted = _options(environment).scans
    if wanted and RunState.figures.total("scans_finished") >= wanted:
        _stop(environment, f"{wanted} scans finished")


# --------------------------------------------------------------------------- run start/stop


def _on_test_start(environment: Environment, **_: Any) -> None:
    options = _options(environment)
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        _prepare_users(environment)
    if isinstance(runner, WorkerRunner):
        Clock.greenlets.append(gevent.spawn(_flush_forever, runner))
        return
    Clock.started_wall = time.time()
    Clock.started = time.monotonic()
    Clock.greenlets.append(gevent.spawn(_control, environment))
    if options.metrics_url:
        Clock.greenlets.append(gevent.spawn(_scrape_forever, options))


def _prepare_users(environment: Environment) -> None:
    options = _options(environment)
    try:
        if options.scenario in PHOTO_SCENARIOS and not RunState.photos:
            RunState.photos.extend(load_photos(options.photos))
        if options.tokens and not RunState.tokens:
            lines = Path(options.tokens).read_text().split()
            if not lines:
                raise PhotoError(f"--tokens {options.tokens}: no token in it")
            RunState.tokens.extend(lines)
    except (PhotoError, OSError) as exc:
        RunState.figures.fail(str(exc))
        _fatal(environment, str(exc))


def _flush_forever(runner: WorkerRunner) -> None:
    while True:
        gevent.sleep(FLUSH_S)
        runner.send_message(FIGURES_MESSAGE, RunState.figures.export())


def _on_test_stop(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        for greenlet in Clock.greenlets:
            greenlet.kill(block=False)
        Clock.greenlets.clear()
        # Sent before Locust's "stopped" message on the same socket: the master has it first.
        runner.send_message(FIGURES_MESSAGE, RunState.figures.export())
        return
    if Clock.ended is None and Clock.started is not None:
        Clock.ended = time.monotonic()


def _duration(options: Any) -> float | None:
    if options.duration:
        return float(options.duration)
    if not options.headless:
        return None  # the web UI's user stops the run
    return DEFAULT_SCANS_DURATION_S if options.scans else DEFAULT_DURATION_S


def _control(environment: Environment) -> None:
    """Progress on the terminal; the stop after --duration."""
    options = _options(environment)
    limit = _duration(options)
    assert Clock.started is not None
    next_progress = Clock.started + PROGRESS_S
    while not Clock.stopping:
        gevent.sleep(0.5)
        now = time.monotonic()
        Clock.workers_max = max(Clock.workers_max, getattr(environment.runner, "worker_count", 0))
        _check_count(environment)
        if limit is not None and now - Clock.started >= limit:
            _stop(environment, f"--duration {limit:g} s reached")
        if now >= next_progress:
            next_progress = now + PROGRESS_S
            _progress(environment, now - Clock.started)


def _progress(environment: Environment, elapsed: float) -> None:
    figures = RunState.figures
    done = figures.total("scans", "completed")
    line = (f"[{elapsed:6.0f} s] users {environment.runner.user_count if environment.runner else 0}"
            f"  sessions {figures.total('sessions_opened')}  scans {done} "
            f"({done / max(elapsed, 1e-9):.1f}/s)  errors {figures.total('errors')}")
    for name in ("classified", "end_to_end", "pong", "live_hint"):
        summary = figures.summary(name)
        if summary is not None:
            line += f"  {name} p99 {summary['p99']:.0f} ms"
    print(line, flush=True)


def _scrape_forever(options: Any) -> None:
    while True:
        try:
            Clock.samples.append(scrape(options.metrics_url, min(options.timeout, 10.0)))
        except ScrapeError as exc:
            key = str(exc)[:200]
            Clock.scrape_failures[key] = Clock.scrape_failures.get(key, 0) + 1
        gevent.sleep(options.metrics_interval)


# --------------------------------------------------------------------------- the report


def _on_quitting(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    for greenlet in Clock.greenlets:
        greenlet.kill(block=False)
    options = _options(environment)
    if options.metrics_url:
        # One last sample, so that the CPU of the run's end counts too.
        try:
            Clock.samples.append(scrape(options.metrics_url, min(options.timeout, 10.0)))
        except ScrapeError as exc:
            key = str(exc)[:200]
            Clock.scrape_failures[key] = Clock.scrape_failures.get(key, 0) + 1
    started = Clock.started if Clock.started is not None else time.monotonic()
    ended = Clock.ended if Clock.ended is not None else time.monotonic()
    meta = {
        "scenario": options.scenario,
        "host": environment.host,
        "users": options.num_users,
        "spawn_rate": options.spawn_rate,
        "workers": Clock.workers_max,
        "upload": options.upload,
        "photos": len(RunState.photos),
        "started_at": datetime.fromtimestamp(Clock.started_wall or time.time(), UTC).isoformat(),
        "duration_s": ended - started,
        "stopped_because": Clock.stop_reason or "interrupted",
        "command": sys.argv[1:],
    }
    server = None
    if options.metrics_url:
        server = {"url": options.metrics_url, **summarise(Clock.samples, Clock.scrape_failures)}
    out = Path(options.out or "loadtest-reports/run")
    result = report.write(RunState.figures, meta, server, out)
    # Printed when Locust has printed its own tables (quit), so that ours is what stays in view.
    Clock.table = (report.table(result) + f"\n\nreport: {out / 'report.json'}"
                   + "".join(f", {out / p}" for p in result["plots"]))
    environment.process_exit_code = 0 if result["ok"] else 1


def _on_quit(**_: Any) -> None:
    if Clock.table:
        print("\n" + Clock.table, flush=True)


# Locust's event hooks are untyped: registered here, through an Any, instead of decorators.
_hooks: Any = events
_hooks.init_command_line_parser.add_listener(_add_options)
_hooks.init.add_listener(_on_init)
_hooks.test_start.add_listener(_on_test_start)
_hooks.test_stop.add_listener(_on_test_stop)
_hooks.quitting.add_listener(_on_quitting)
_hooks.quit.add_listener(_on_quit)
