#!/usr/bin/env bash
# Set everything up, then run the whole test suite (all tiers; the root-only tiers need root).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m unit` or `scripts/test.sh -k watch`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
