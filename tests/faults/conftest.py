"""Fixtures of the fault suite: private services for the whole run, a fresh distributed stack
(server + workers as subprocesses) per test, and a summary of the measured figures at the end.
"""

from __future__ import annotations

import contextlib
import gc
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.checks import SUMMARIES
from tests.faults.harness import FaultStack
from tests.faults.services import PrivateServices, missing_binaries, private_services


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.fault)


@pytest.fixture(scope="session")
def fault_services() -> Iterator[PrivateServices]:
    reason = missing_binaries()
    if reason is not None:
        pytest.skip(f"fault suite needs private services: {reason}")
    with private_services() as services:
        yield services


@pytest.fixture
def fault_stack(
    fault_services: PrivateServices, tmp_path: Path, s3_endpoint: str
) -> Iterator[FaultStack]:
    """A distributed stack, not started: the test sets the environment and starts it."""
    fault_services.ensure_up()
    stack = FaultStack.create(fault_services, tmp_path, s3_endpoint)
    try:
        yield stack
    finally:
        stack.stop()
        stack.shrink_logs()
        # The load's clients lose connections abruptly by design (servers killed, connects
        # cancelled mid-handshake when a test stops its load); collect what they left now,
        # inside the fault suite, rather than as a warning in whichever test runs next.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        # Whatever the test did to the services, the next test gets them running.
        with contextlib.suppress(Exception):
            fault_services.ensure_up()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not SUMMARIES:
        return
    terminalreporter.section("fault suite: measured figures")
    for summary in SUMMARIES:
        figures = {k: v for k, v in summary.items()
                   if k.endswith(("_s", "_ms"))
                   or k in ("invariants_ok", "n_violations", "scan_outcomes")}
        terminalreporter.write_line(f"{summary['test']}: {figures}")
