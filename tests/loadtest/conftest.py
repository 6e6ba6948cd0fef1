"""What the load-test harness's tests run against, and how they run it.

The harness is always a subprocess (``python -m server.loadtest``): Locust patches the
standard library with gevent when it is imported, which must never happen inside pytest. It
runs against a real embedded server, itself a subprocess as an operator would start it, with
the instant test stages (tests/support/stages.py: the harness is measured, not the models),
the per-user quotas lifted (every simulated user is a new guest from 127.0.0.1) and a
heartbeat of one second, so that a run of seconds sees pongs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import ROOT, TEST_STAGES, free_port

TRASHNET = ROOT.parent / "shared" / "data" / "trashnet"
#: Held-out TrashNet photos the embedded classifier is sure of (tests may read ../shared).
TRASHNET_PHOTOS = ("glass/glass1.jpg", "plastic/plastic1.jpg", "cardboard/cardboard1.jpg")
#: The longest any one harness run of these tests may take; a run past it is a hang.
HARNESS_TIMEOUT_S = 150


@dataclass
class Run:
    code: int
    output: str
    report: dict[str, Any]
    out: Path


def run_harness(args: list[str], out: Path, *, timeout: float = HARNESS_TIMEOUT_S) -> Run:
    """Runs ``wastecoach loadtest`` (through the ``wastecoach`` command, as an operator does)
    and reads the report it wrote."""
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "loadtest", *args, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    output = done.stdout + done.stderr
    path = out / "report.json"
    assert path.exists(), f"no report.json (exit {done.returncode}):\n{output[-4000:]}"
    return Run(done.returncode, output, json.loads(path.read_text()), out)


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready")


@contextlib.contextmanager
def embedded_server(data: Path, **settings: str) -> Iterator[str]:
    """A real embedded server (``wastecoach serve``) on a free port; ``settings`` are more
    WASTECOACH_ variables."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Embedded, whatever this machine's environment says: none of its WASTECOACH_ settings.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WASTECOACH_")}
    env = dict(
        clean, PYTHONPATH=str(ROOT), WASTECOACH_PORT=str(port),
        WASTECOACH_DATA_DIR=str(data), WASTECOACH_PUBLIC_URL=base,
        WASTECOACH_LOG_LEVEL="warning", WASTECOACH_STAGES_FACTORY=TEST_STAGES,
        WASTECOACH_SESSION__HEARTBEAT_INTERVAL_S="1",
        WASTECOACH_ACCOUNTS__SCANS_PER_MINUTE="100000",
        WASTECOACH_ACCOUNTS__SCANS_PER_DAY="100000",
        WASTECOACH_ACCOUNTS__CHATS_PER_MINUTE="100000",
        WASTECOACH_ACCOUNTS__CHATS_PER_DAY="100000",
        WASTECOACH_ACCOUNTS__GUESTS_PER_MINUTE="100000",
        WASTECOACH_ACCOUNTS__GUESTS_PER_DAY="100000",
        **{f"WASTECOACH_{key.upper()}": value for key, value in settings.items()},
    )
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], cwd=ROOT, env=env)
    try:
        wait_ready(base, proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with embedded_server(tmp_path_factory.mktemp("server-data")) as url:
        yield url


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of photos: held-out TrashNet photos where ../shared has them, else photos made
    with Pillow (the test stages do not look at the pixels; live mode's tests need the real
    ones and skip without them)."""
    folder = tmp_path_factory.mktemp("photos")
    real = [TRASHNET / name for name in TRASHNET_PHOTOS if (TRASHNET / name).is_file()]
    if real:
        for path in real:
            shutil.copy(path, folder / path.name)
    else:
        for n, colour in enumerate([(200, 40, 40), (40, 160, 60), (50, 60, 200)]):
            Image.new("RGB", (320, 240), colour).save(folder / f"made{n}.jpg", quality=90)
    return folder


@pytest.fixture
def real_photos(photos: Path) -> Path:
    if not any(p.name.startswith("glass") for p in photos.iterdir()):
        pytest.skip(f"live mode needs a photo the classifier is sure of: {TRASHNET} is absent")
    return photos
