"""The command line's set-up of its process: numpy's OpenBLAS keeps to one thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter (OpenBLAS reads its settings once per process)."""
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_importing_the_command_line_leaves_numpy_unimported() -> None:
    # one_blas_thread() runs first in main(): it works only while numpy is not yet imported.
    assert _python("import sys, server.cli; print('numpy' in sys.modules)") == "False"


def test_numpy_starts_no_blas_threads() -> None:
    # Every thread of this interpreter is the main one: OpenBLAS started none of its own
    # (on a machine with more than one core it otherwise starts one per extra core).
    code = (
        "import os, server.cli; server.cli.one_blas_thread(); import numpy; "
        "numpy.ones((64, 64)) @ numpy.ones((64, 64)); "
        "print(os.environ['OPENBLAS_NUM_THREADS'], len(os.listdir('/proc/self/task')))"
    )
    assert _python(code) == "1 1"


def test_an_operators_own_setting_is_kept() -> None:
    code = (
        "import os, server.cli; server.cli.one_blas_thread(); "
        "print(os.environ['OPENBLAS_NUM_THREADS'])"
    )
    assert _python(code, OPENBLAS_NUM_THREADS="2") == "2"
