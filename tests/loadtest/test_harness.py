"""``wastecoach loadtest`` end to end: each scenario for a few seconds against a real embedded
server, one run with a Locust worker process (figures merged on the master), the server's
metrics scraped from a Prometheus endpoint, and the harness's answer to bad input.

Every run is a subprocess with a timeout (conftest.run_harness): a harness that hangs fails
the test instead of holding the suite. Assertions are about what was counted and how the
figures relate, never about how fast anything was (the machine is shared).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from server.loadtest.launcher import run_and_report
from tests.conftest import ROOT, free_port
from tests.loadtest.conftest import embedded_server, run_harness
from tests.loadtest.fake_server import FakeServer

# test_scan_inline_photos is the smoke run of the suite (so of .ci/run); the rest are "slow".
pytestmark = pytest.mark.timeout(600)

#: Short runs: a couple of users, no think time to speak of.
QUICK = ["--users", "2", "--spawn-rate", "2", "--think", "0.05", "0.2"]


def assert_figures_are_consistent(report: dict[str, Any], *names: str) -> None:
    for name in names:
        row = report["latency_ms"][name]
        assert row["count"] >= 1, name
        assert 0 < row["p50"] <= row["p95"] <= row["p99"] <= row["max"], (name, row)


def test_scan_inline_photos(server_url: str, photos: Path, tmp_path: Path) -> None:
    run = run_harness([*QUICK, "--host", server_url, "--photos", str(photos),
                       "--duration", "4"], tmp_path / "out")
    assert run.code == 0, run.output[-4000:]
    report = run.report
    assert report["ok"] and report["fatal"] == [] and report["errors"] == {}
    completed = report["scans"]["completed"]
    assert completed >= 1
    # Every completed scan was seen through each of its steps, and counted once.
    for name in ("accepted", "classified", "first_token", "bins", "end_to_end"):
        assert report["latency_ms"][name]["count"] == completed, name
    # The test stages stream three deltas a scan: two gaps each.
    assert report["latency_ms"]["token_gap"]["count"] == 2 * completed
    assert_figures_are_consistent(report, "connect", "classified", "first_token", "bins",
                                  "end_to_end")
    assert report["latency_ms"]["connect"]["count"] == 2
    assert report["rates"]["scans_completed_per_s"] > 0
    # Every scan.start went out (and the heartbeat with them), and every event came in.
    assert report["counts"]["messages_sent"][""] >= report["counts"]["scans_started"][""]
    assert report["counts"]["messages_received"][""] >= 7 * completed
    assert sum(row["scans_finished"] for row in report["timeline"]) == completed
    assert set(report["plots"]) == {"latency_over_time.png", "latency_distribution.png"}
    for plot in report["plots"]:
        assert (run.out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The terminal shows the table (the exact figures) and where the report is.
    assert "classified" in run.output and str(run.out / "report.json") in run.output


@pytest.mark.slow
def test_scan_and_chat_through_uploads_with_a_locust_worker(
    server_url: str, photos: Path, tmp_path: Path
) -> None:
    """One Locust worker process runs the users; the master's report holds everything the
    worker measured (its HDR histograms arrive as custom messages)."""
    run = run_harness([*QUICK, "--host", server_url, "--photos", str(photos), "--duration", "5",
                       "--scenario", "scan+chat", "--upload", "--chat-questions", "1",
                       "--workers", "1"], tmp_path / "out")
    assert run.code == 0, run.output[-4000:]
    report = run.report
    assert report["workers"] == 1
    completed = report["scans"]["completed"]
    assert completed >= 1
    assert report["latency_ms"]["upload"]["count"] >= completed
    assert report["latency_ms"]["classified"]["count"] == completed
    assert report["latency_ms"]["end_to_end"]["count"] == completed
    answered = sum(report["chats"].values())
    assert answered >= 1
    assert report["latency_ms"]["chat_done"]["count"] == answered
    assert_figures_are_consistent(report, "upload", "classified", "chat_first_token", "chat_done")


@pytest.mark.slow
def test_live_camera_frames(server_url: str, real_photos: Path, tmp_path: Path) -> None:
    run = run_harness(["--users", "1", "--think", "0.1", "0.2", "--host", server_url,
                       "--photos", str(real_photos), "--duration", "6", "--scenario", "live",
                       "--live-seconds", "4"], tmp_path / "out")
    assert run.code == 0, run.output[-4000:]
    report = run.report
    assert report["counts"]["live_frames_sent"][""] >= 4
    assert_figures_are_consistent(report, "live_hint")
    # A photo the classifier is sure of, held still for seconds: live mode scans it.
    assert report["scans"].get("completed", 0) >= 1
    assert report["latency_ms"]["classified"]["count"] == report["scans"]["completed"]


@pytest.mark.slow
def test_stops_after_a_count_of_scans_called_from_a_script(
    server_url: str, photos: Path, tmp_path: Path
) -> None:
    """What bench/capacity.py calls: the same run, its report handed back as a dict (Locust
    runs in a child process, not in this one)."""
    code, report = run_and_report([*QUICK, "--host", server_url, "--photos", str(photos),
                                   "--scans", "5", "--duration", "120"], tmp_path / "out")
    assert code == 0, report
    assert report == json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["stopped_because"] == "5 scans finished"
    assert report["scans"]["completed"] >= 5
    assert report["duration_s"] < 120
    assert "locust" not in sys.modules


@pytest.mark.slow
def test_connections_the_server_ends_are_resumed(photos: Path, tmp_path: Path) -> None:
    """A server whose connections live two seconds closes each with 1001 (lifetime cap): the
    users resume, the replay brings the events they missed, and no scan is lost."""
    with embedded_server(tmp_path / "data", session__max_lifetime_s="2",
                         session__expiry_warning_s="1") as url:
        run = run_harness([*QUICK, "--host", url, "--photos", str(photos), "--duration", "6"],
                          tmp_path / "out")
    assert run.code == 0, run.output[-4000:]
    report = run.report
    assert report["closes"]["1001"] >= 1
    assert report["resumes"]["resumed"] >= 1
    assert report["resumes"].get("failed", 0) == 0
    assert report["latency_ms"]["resume"]["count"] == report["resumes"]["attempted"]
    assert report["errors"] == {} and "lost" not in report["scans"]
    assert report["latency_ms"]["end_to_end"]["count"] == report["scans"]["completed"]


@pytest.mark.slow
def test_a_run_stopped_from_outside_writes_its_report_and_leaves_nothing_behind(
    server_url: str, tmp_path: Path
) -> None:
    """SIGTERM to ``wastecoach loadtest`` (a supervisor, ``timeout``) reaches Locust, which
    stops, writes what it measured, and exits; no Locust process outlives the command."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "loadtest", "--users", "2", "--host", server_url,
         "--scenario", "idle", "--duration", "300", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the first progress line: the users are at work
            if line.startswith("[") and "users" in line:
                break
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    report = json.loads((out / "report.json").read_text())
    assert report["stopped_because"] == "interrupted"
    assert report["counts"]["sessions_opened"][""] == 2
    left = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True)
    assert left.stdout.strip() == "", "a Locust process outlived the command"


# --------------------------------------------------------------------------- server metrics


class _Metrics(BaseHTTPRequestHandler):
    """Prometheus text in the form prometheus_client writes it; every scrape finds 10 more
    sessions, 10 × 20 KiB more memory and half a CPU second more."""

    scrapes = 0

    def do_GET(self) -> None:
        n = type(self).scrapes = type(self).scrapes + 1
        body = (
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\n"
            f"process_resident_memory_bytes {100_000_000 + n * 10 * 20480:.1f}\n"
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
            "# TYPE process_cpu_seconds_total counter\n"
            f"process_cpu_seconds_total {n * 0.5}\n"
            "# HELP wastecoach_ws_sessions_open WebSocket sessions open in this process.\n"
            "# TYPE wastecoach_ws_sessions_open gauge\n"
            f"wastecoach_ws_sessions_open {n * 10:.1f}\n"
            "# HELP wastecoach_scans_total Finished scans by status.\n"
            "# TYPE wastecoach_scans_total counter\n"
            'wastecoach_scans_total{status="completed"} 3.0\n'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def metrics_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), _Metrics)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/metrics"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.mark.slow
def test_idle_sessions_with_heartbeats_and_the_servers_metrics(
    server_url: str, metrics_url: str, tmp_path: Path
) -> None:
    run = run_harness(["--users", "3", "--spawn-rate", "3", "--host", server_url,
                       "--scenario", "idle", "--duration", "4", "--metrics-url", metrics_url,
                       "--metrics-interval", "0.5"], tmp_path / "out")
    assert run.code == 0, run.output[-4000:]
    report = run.report
    assert report["counts"]["sessions_opened"][""] == 3
    assert report["scans"] == {} and report["closes"] == {}
    # The test server asks for a ping every second: the heartbeat round trip is measured.
    assert_figures_are_consistent(report, "pong")
    server = report["server"]
    assert server["url"] == metrics_url and server["scrapes_failed"] == 0
    samples = server["samples"]
    assert len(samples) >= 2
    # The endpoint grows by exactly 20 KiB a session, and half a CPU second a scrape (ten
    # sessions a scrape; a scrape cut short by the run's end leaves no sample, so the count
    # of samples is not the count of scrapes).
    assert server["rss_bytes_per_session"] == pytest.approx(20480)
    scrapes = (samples[-1]["sessions_open"] - samples[0]["sessions_open"]) / 10
    assert scrapes >= 1
    assert server["cpu_seconds"] == pytest.approx(0.5 * scrapes)
    assert server["sessions_open_max"] == samples[-1]["sessions_open"]
    assert "KiB per open session" in run.output


# --------------------------------------------------------------------------- bad input


@pytest.mark.slow
def test_an_unreachable_server_is_reported_at_once(photos: Path, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    run = run_harness(["--host", url, "--photos", str(photos), "--duration", "60"],
                      tmp_path / "out", timeout=60)
    assert run.code == 2
    assert not run.report["ok"]
    assert any("cannot reach" in reason and url in reason for reason in run.report["fatal"])
    assert "cannot reach" in run.output


@pytest.mark.slow
def test_missing_photos_are_refused_before_the_run(tmp_path: Path) -> None:
    run = run_harness(["--host", "http://127.0.0.1:9", "--photos", str(tmp_path / "none")],
                      tmp_path / "out", timeout=60)
    assert run.code == 2
    assert "no such folder" in run.report["fatal"][0]


@pytest.mark.slow
def test_refused_sign_in_stops_the_run(photos: Path, tmp_path: Path) -> None:
    with FakeServer("refuse") as fake:
        run = run_harness([*QUICK, "--host", fake.url, "--photos", str(photos),
                           "--duration", "60"], tmp_path / "out")
    assert run.code == 1, run.output[-4000:]
    report = run.report
    assert not report["ok"]
    assert any("guest sign-in refused: HTTP 403" in r for r in report["fatal"]), report["fatal"]
    # It stopped at once, not after the duration.
    assert report["duration_s"] < 60


@pytest.mark.slow
def test_a_malformed_event_is_reported(photos: Path, tmp_path: Path) -> None:
    with FakeServer("malformed") as fake:
        run = run_harness([*QUICK, "--host", fake.url, "--photos", str(photos),
                           "--duration", "3"], tmp_path / "out")
    assert run.code == 1, run.output[-4000:]
    report = run.report
    assert report["errors"]["malformed_event"] >= 1
    examples = report["counts"]["malformed_examples"]
    assert any("scan.classified" in text and "classification" in text for text in examples)
    # What was measured before the bad event is in the report.
    assert report["latency_ms"]["accepted"]["count"] >= 1
    assert report["scans"].get("lost", 0) >= 1


@pytest.mark.slow
def test_a_server_that_closes_mid_run_and_stays_away(photos: Path, tmp_path: Path) -> None:
    with FakeServer("close") as fake:
        run = run_harness([*QUICK, "--host", fake.url, "--photos", str(photos),
                           "--duration", "60", "--reconnect-attempts", "2"], tmp_path / "out")
    assert run.code == 1, run.output[-4000:]
    report = run.report
    assert report["closes"]["1012"] >= 1
    assert report["resumes"]["attempted"] >= 2 and report["resumes"]["failed"] >= 1
    assert any("1012" in r and "reconnects" in r for r in report["fatal"]), report["fatal"]
    assert report["latency_ms"]["accepted"]["count"] >= 1
    assert report["duration_s"] < 60


@pytest.mark.slow
def test_a_connection_turned_away_for_now_is_tried_again(tmp_path: Path) -> None:
    """1013 at connect (the per-address cap) is retried with backoff, as the protocol asks;
    it is counted among the close codes, and is no error."""
    with FakeServer("busy") as fake:
        run = run_harness(["--users", "1", "--host", fake.url, "--scenario", "idle",
                           "--duration", "3"], tmp_path / "out")
    assert run.code == 0, run.output[-4000:]
    report = run.report
    assert report["closes"] == {"1013": 2}
    assert report["counts"]["sessions_opened"][""] == 1
    assert report["errors"] == {} and report["fatal"] == []
