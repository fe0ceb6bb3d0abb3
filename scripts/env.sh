#!/usr/bin/env bash
# Creates (or refreshes) the project's virtualenv in .venv with stockroom and
# every extra (torch, tensorflow-cpu, test tools). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.stockroom-installed
want=$(cat setup.cfg pyproject.toml | cksum)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "== installing stockroom and its extras into .venv (a few minutes the first time)"
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
# torch first, pinned: this version is the CPU build; an unpinned torch
# would pull a CUDA build of several GB.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[torch,tensorflow-cpu,s3,test]"
echo "$want" > "$stamp"
