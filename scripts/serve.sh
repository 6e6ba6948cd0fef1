#!/usr/bin/env bash
# Sets up and starts Waste Coach in embedded mode: no services, no API key, no configuration.
# Every argument goes to `wastecoach serve` (e.g. --host 0.0.0.0 --port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/_venv.sh runtime
exec .venv/bin/wastecoach serve "$@"
