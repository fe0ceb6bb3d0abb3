#!/usr/bin/env bash
# Runs the whole test suite (sets up .venv first when needed).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh --slow -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest "$@"
