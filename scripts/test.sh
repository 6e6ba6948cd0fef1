#!/usr/bin/env bash
# The whole test suite, from a fresh clone: services, virtualenv, dependencies, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure_services.sh

bash scripts/_venv.sh dev
# The tools tests/deploy runs (checkov, ansible, kubernetes-validate, python-hcl2).
bash scripts/_venv_deploy.sh
if [ -x scripts/install_llm_test_server.sh ]; then scripts/install_llm_test_server.sh; fi

.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
