#!/usr/bin/env bash
# Sets up and starts Waste Coach in embedded mode: no services, no API key, no configuration.
# Extra arguments go to `wastecoach serve` (e.g. --host 0.0.0.0 --port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
exec .venv/bin/wastecoach serve "$@"
