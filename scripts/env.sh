#!/usr/bin/env bash
# Creates (or refreshes) the project's virtualenv in .venv with stockroom and
# every extra (torch, tensorflow-cpu, lightning, transformers, test tools). Safe
# to run again. torch is installed first and pinned; lightning and transformers
# leave it as it is (they only need torch>=2).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi

# stock ui (docs/ui.md): its chart library, built from the pinned npm
# package (stockroom/ui/frontend/package-lock.json) into the package's
# git-ignored assets/vendor/, and Debian's chromium for the UI tests.
# Each step runs only when its output is missing, so this stays quick.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }
apt_install() {
  if command -v apt-get >/dev/null; then
    as_root apt-get update -qq || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  else
    echo "== cannot install $* (no apt-get): install it yourself" >&2
  fi
}
vendor=stockroom/ui/assets/vendor
lock=stockroom/ui/frontend/package-lock.json
if [ ! -f "$vendor/uPlot.iife.min.js" ] || [ "$(cat "$vendor/.lock" 2>/dev/null)" != "$(cksum < "$lock")" ]; then
  command -v npm >/dev/null || { echo "== installing npm (to build the stock ui chart library)"; apt_install npm; }
  echo "== building stock ui's chart library (npm ci, pinned by $lock)"
  rm -rf build/ui-npm && mkdir -p build/ui-npm "$vendor"
  cp stockroom/ui/frontend/package.json "$lock" build/ui-npm/
  (cd build/ui-npm && npm ci --no-audit --no-fund --ignore-scripts --silent)
  cp build/ui-npm/node_modules/uplot/dist/uPlot.iife.min.js build/ui-npm/node_modules/uplot/dist/uPlot.min.css "$vendor/"
  cp build/ui-npm/node_modules/uplot/LICENSE "$vendor/uPlot.LICENSE"
  node -p 'require("./build/ui-npm/node_modules/uplot/package.json").version' > "$vendor/uPlot.VERSION"
  cksum < "$lock" > "$vendor/.lock"
fi
# Azurite, Microsoft's Azure Storage emulator, for the az:// remote tests
# (tests/test_remote_clouds.py starts it on 127.0.0.1), pinned, into the
# git-ignored build/azurite; only where npm is (the tests skip without it).
azurite_version=3.37.0
if command -v npm >/dev/null && [ "$(cat build/azurite/.version 2>/dev/null)" != "$azurite_version" ]; then
  echo "== installing azurite $azurite_version (the az:// remote tests run against it)"
  rm -rf build/azurite && mkdir -p build/azurite
  if npm install --prefix build/azurite --no-audit --no-fund --silent "azurite@$azurite_version"; then
    echo "$azurite_version" > build/azurite/.version
  else
    echo "== azurite not installed: the az:// tests in tests/test_remote_clouds.py will skip" >&2
  fi
fi
if ! command -v chromium >/dev/null && [ -z "${STOCK_SKIP_CHROMIUM:-}" ]; then
  echo "== installing Debian's chromium (the stock ui tests drive it headless)"
  apt_install chromium || echo "== chromium not installed: tests/test_ui.py will skip" >&2
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
# The frameworks' versions the integration tests ran with, in the same call as
# torch's pin so that neither can pull another torch (docs/integrations.md).
.venv/bin/python -m pip install --quiet -e ".[torch,tensorflow-cpu,lightning,transformers,s3,test]" \
  "torch==2.13.0" "lightning==2.6.6" "transformers==5.25.0" "accelerate==1.16.0"
echo "$want" > "$stamp"
