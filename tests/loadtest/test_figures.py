"""The harness's figures, report and metrics parsing, in this process: none of these modules
imports Locust (which would patch pytest's own standard library), and a test checks that the
server's command line does not either."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from server.loadtest import report
from server.loadtest.figures import Figures
from server.loadtest.scrape import Sample, ScrapeError, parse, summarise
from tests.conftest import ROOT


def test_figures_merged_from_workers_equal_those_of_one_process() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(3, 1) for _ in range(5000)]
    alone = Figures()
    master = Figures()
    workers = [Figures(), Figures(), Figures()]
    for n, ms in enumerate(values):
        alone.record("classified", ms, at=1000 + n // 1000)
        alone.count("errors", "rate_limited" if n % 100 == 0 else "internal")
        worker = workers[n % 3]
        worker.record("classified", ms, at=1000 + n // 1000)
        worker.count("errors", "rate_limited" if n % 100 == 0 else "internal")
        if n % 700 == 0:  # workers flush now and then, as they do every two seconds
            master.absorb(worker.export())
    for worker in workers:
        master.absorb(worker.export())
        assert worker.export()["histograms"] == {}, "an export sends only what is new"
    assert master.summary("classified") == alone.summary("classified")
    assert master.counts == alone.counts
    assert sorted(master.timeline) == sorted(alone.timeline)
    for sec, second in alone.timeline.items():
        merged = master.timeline[sec].histograms["classified"]
        assert merged.get_total_count() == second.histograms["classified"].get_total_count()


def test_percentiles_are_exact_to_three_digits() -> None:
    figures = Figures()
    for ms in range(1, 1001):  # 1 ms ... 1000 ms
        figures.record("end_to_end", float(ms))
    summary = figures.summary("end_to_end")
    assert summary is not None
    assert summary["count"] == 1000
    assert summary["p50"] == pytest.approx(500, rel=1e-3)
    assert summary["p99"] == pytest.approx(990, rel=1e-3)
    assert summary["max"] == pytest.approx(1000, rel=1e-3)


def test_a_payload_that_is_not_an_export_is_refused() -> None:
    with pytest.raises(ValueError, match="not a figures export"):
        Figures().absorb({"histograms": {}})
    with pytest.raises(ValueError, match="unknown figure"):
        Figures().absorb({"histograms": {"nonsense": b""}, "counts": {}, "timeline": {},
                          "fatal": []})


def test_the_report_holds_every_figure_and_says_why_a_run_failed(tmp_path: Path) -> None:
    figures = Figures()
    for ms in (10.0, 20.0, 30.0):
        figures.record("classified", ms)
    figures.count("scans", "completed", 3)
    figures.count("errors", "malformed_event")
    figures.fail("the server closed a connection (1012) and 2 reconnects failed")
    written = report.write(figures, {"scenario": "scan", "users": 1, "duration_s": 3.0,
                                     "host": "http://h"}, None, tmp_path)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(written))
    assert on_disk["ok"] is False
    assert on_disk["latency_ms"]["classified"]["count"] == 3
    assert on_disk["rates"]["scans_completed_per_s"] == pytest.approx(1.0)
    text = report.table(written)
    assert "THE RUN FAILED" in text and "1012" in text


PROMETHEUS_TEXT = """# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.5e+08
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
# HELP wastecoach_ws_sessions_open WebSocket sessions open in this process.
# TYPE wastecoach_ws_sessions_open gauge
wastecoach_ws_sessions_open 1000.0
# HELP wastecoach_ws_closes_total WebSocket closes by close code.
# TYPE wastecoach_ws_closes_total counter
wastecoach_ws_closes_total{code="1013"} 2.0
"""


def test_metrics_are_read_with_prometheus_clients_parser() -> None:
    sample = parse(PROMETHEUS_TEXT, 1.0)
    assert sample == Sample(1.0, 2.5e8, 1000.0, 12.5)
    # A server without the session gauge: memory and CPU still count.
    assert parse(PROMETHEUS_TEXT.replace("wastecoach_ws_sessions_open", "other"), 1.0) == Sample(
        1.0, 2.5e8, None, 12.5
    )
    with pytest.raises(ScrapeError):
        parse("this is { not prometheus", 1.0)


def test_memory_per_session_is_the_growth_over_the_sessions_opened() -> None:
    samples = [Sample(0, 100e6, 0, 1.0), Sample(5, 120e6, 1000, 3.0), Sample(10, 110e6, 500, 4.0)]
    summary = summarise(samples, {})
    assert summary["rss_bytes_per_session"] == pytest.approx(20e6 / 1000)
    assert summary["cpu_seconds"] == pytest.approx(3.0)
    assert summary["cpu_cores_mean"] == pytest.approx(0.3)
    assert summary["cpu_cores_max"] == pytest.approx(0.4)


def test_the_command_line_and_the_server_never_import_locust() -> None:
    code = (
        "import sys, server.cli, server.app, workers.tasks\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent'))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_without_the_loadtest_extra_the_harness_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from server.loadtest import launcher

    monkeypatch.setattr(launcher, "EXTRA_MODULES", ("locust", "no_such_module_here"))
    assert launcher.run(["--worker"]) == 2
    code = launcher.run(["--host", "http://127.0.0.1:9", "--scenario", "idle",
                         "--out", str(tmp_path)])
    assert code == 2
    fatal = json.loads((tmp_path / "report.json").read_text())["fatal"][0]
    assert "no_such_module_here" in fatal and "loadtest extra" in fatal
    assert "locust" not in sys.modules
