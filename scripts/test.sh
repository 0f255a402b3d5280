#!/usr/bin/env bash
# The whole test suite: makes .venv, installs requirements-dev.txt, runs pytest (unit, slow and browser tests).
# Browser tests need Debian's chromium (/usr/bin/chromium); without it they skip loudly, and fail when CI is set.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow and not e2e" for a quick run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
exec .venv/bin/python -m pytest "$@"
