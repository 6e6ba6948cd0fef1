#!/usr/bin/env bash
# Refreshes the lock files in requirements/ from pyproject.toml, with uv (`uv pip compile`).
#
#   scripts/lock.sh                          add what pyproject.toml gained, keep every other pin
#   scripts/lock.sh --upgrade                move every pin to the newest release allowed
#   scripts/lock.sh --upgrade-package httpx  move one package (and what it needs)
#
# Arguments go to each `uv pip compile`. The files it writes:
#   requirements/dev.txt      runtime + the dev and loadtest extras + what the LLM test server
#                             needs (test.sh)
#   requirements/runtime.txt  runtime only, at the same versions as dev.txt (serve.sh)
#   requirements/pip.txt      the pip that installs them
#   requirements/deploy.txt   the deploy checks' tools, from requirements/deploy.in (their own
#                             virtualenv, .venv-deploy: scripts/_venv_deploy.sh)
# The train extra (torch) is in none of them. Resolution uses PyPI only (uv does not read
# pip.conf, so no local mirror or find-links of this machine ends up in a lock), for every
# Python >= 3.11 and every platform, with the sha256 of each file PyPI has for a pinned version.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"

# A uv of the pinned version: the one on PATH when it is that version, else a private copy.
uv=uv
if [ "$(uv --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    tool="${XDG_CACHE_HOME:-$HOME/.cache}/wastecoach/uv-$UV_VERSION"
    if [ ! -x "$tool/bin/uv" ]; then
        python3 -m venv "$tool"
        "$tool/bin/python" -m pip install -q "uv==$UV_VERSION"
    fi
    uv="$tool/bin/uv"
fi

compile() {
    "$uv" pip compile --quiet --universal --python-version 3.11 --fork-strategy fewest \
        --generate-hashes --index-url https://pypi.org/simple \
        --custom-compile-command "scripts/lock.sh" "$@"
}

# The LLM test server (scripts/install_llm_test_server.sh) installs its own portable build of
# llama-cpp-python without dependencies; those dependencies come from dev.txt.
llama=$(sed -n 's/^LLAMA_CPP_VERSION="\(.*\)"$/\1/p' scripts/install_llm_test_server.sh)
if [ -z "$llama" ]; then
    echo "lock.sh: no LLAMA_CPP_VERSION in scripts/install_llm_test_server.sh" >&2
    exit 1
fi

# Extra requirements come on stdin, so that no temporary path ends up in the annotations.
echo "llama-cpp-python[server]==$llama" | compile pyproject.toml - --extra dev --extra loadtest \
    --no-emit-package llama-cpp-python -o requirements/dev.txt "$@"
compile pyproject.toml -c requirements/dev.txt -o requirements/runtime.txt "$@"
echo pip | compile - -o requirements/pip.txt "$@"
compile requirements/deploy.in -o requirements/deploy.txt "$@"
echo "lock.sh: wrote requirements/dev.txt, runtime.txt, pip.txt, deploy.txt"
