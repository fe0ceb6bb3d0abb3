#!/usr/bin/env bash
# Fresh machine -> working demo: sets up .venv, then runs the end-to-end
# quickstart (a real git repo, stock init, training, git commit/checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
export PATH="$PWD/.venv/bin:$PATH"
.venv/bin/python examples/quickstart.py "$@"
exec .venv/bin/python examples/runs_resume.py
