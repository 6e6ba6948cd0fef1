#!/usr/bin/env bash
# The whole test suite, from a fresh clone: services, virtualenv, dependencies, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure_services.sh

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
if [ -x scripts/install_llm_test_server.sh ]; then scripts/install_llm_test_server.sh; fi

.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
