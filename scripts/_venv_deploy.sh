#!/usr/bin/env bash
# Usage: scripts/_venv_deploy.sh
# Creates .venv-deploy with the tools that check deploy/, terraform/ and ansible/ (checkov,
# ansible-core with the collections of the `ansible` package, ansible-lint, kubernetes-validate,
# python-hcl2): the exact versions of requirements/deploy.txt, every file checked against its
# sha256. A virtualenv of their own, because their pins (checkov's above all) conflict with
# the product's lock. tests/deploy calls them from here; scripts/test.sh runs this first.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv-deploy/bin/python ]; then
  "$PYTHON" -m venv .venv-deploy
fi
.venv-deploy/bin/python -m pip install -q --require-hashes -r requirements/pip.txt
# --no-compile: the `ansible` package brings tens of thousands of collection files, and
# byte-compiling them all took most of the install; the tools compile what they import.
.venv-deploy/bin/python -m pip install -q --no-compile --require-hashes -r requirements/deploy.txt
