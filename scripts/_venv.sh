#!/usr/bin/env bash
# Usage: scripts/_venv.sh runtime|dev
# Creates .venv (installing python3-venv on Debian/Ubuntu when it is missing), installs the
# locked requirements (requirements/runtime.txt for serve.sh, requirements/dev.txt for test.sh;
# exact versions, every file checked against its sha256), then the project itself, editable and
# without dependencies. Run it, do not source it: it takes no arguments but the lock's name.
# The lock files are written by scripts/lock.sh; see "Dependencies and the lock file" in README.
set -euo pipefail
cd "$(dirname "$0")/.."

case "$*" in
  runtime|dev) lock=$1 ;;
  *) echo "usage: scripts/_venv.sh runtime|dev" >&2; exit 2 ;;
esac

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -c "import ensurepip" 2>/dev/null; then
    SUDO=""; if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    ver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "python${ver}-venv" >/dev/null \
      || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q python3-venv >/dev/null
  fi
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --require-hashes -r requirements/pip.txt
.venv/bin/python -m pip install -q --require-hashes -r "requirements/$lock.txt"
.venv/bin/python -m pip install -q --no-deps -e .
