#!/usr/bin/env bash
# A separate venv for bench/overhead.py: the peers we compare against live here, never in .venv.
# (fastapi-alertengine 1.7.0's wheel installs top-level `orchestrator` and `tests` packages that
# would shadow ours.) Idempotent: reinstalls only when the lock or pyproject changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.bench-venv
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.installed-$(cat requirements.lock pyproject.toml scripts/bench-venv.sh | cksum | cut -d' ' -f1)"
if [ -f "$STAMP" ]; then
  exit 0
fi
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
echo "installing the benchmark peers into $VENV ..."
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c requirements.lock -e . \
  "prometheus-fastapi-instrumentator==8.1.0" "fastapi-alertengine==1.7.0"
rm -f "$VENV"/.installed-*
touch "$STAMP"
