"""Owner-only files: the data folder (0700) and what holds secrets or personal data in it (0600).

The data folder holds the SQLite database (every account, scan and chat), its WAL and
shared-memory files, the generated signing key and the local uploads. Nothing in it is for
other local users. Files are created with their final mode, never created readable and
narrowed afterwards: a file descriptor opened in between would keep its access. What an
earlier version left with looser modes is narrowed at start-up.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with the folder itself owner-only."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _narrow(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only if it does not exist; narrow it if it does."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        _narrow(path, FILE_MODE)
    else:
        os.close(fd)


def narrow_if_exists(path: Path) -> None:
    if path.exists():
        _narrow(path, FILE_MODE)


def _narrow(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 & ~mode:
            path.chmod(mode)
    except PermissionError:
        # Someone else's folder (a data dir set up by an operator): say so, and go on.
        log.warning("cannot make %s owner-only (mode %o); check its permissions", path, mode)
