#!/usr/bin/env bash
# Sets up the machine and the project's venv (scripts/setup.sh), then runs the test suite against
# xrel as installed there: `.venv/bin/python -m pytest tests`. Arguments go to pytest; when one of
# them names a test file or directory, only those run (scripts/test.sh -x tests/test_targets.py).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv=$("$here/scripts/setup.sh")
cd "$here"
export PATH="$venv/bin:$PATH"
selection=(tests)
for arg in "$@"; do
  if [ -e "${arg%%::*}" ]; then selection=(); fi
done
exec "$venv/bin/python" -m pytest "${selection[@]}" "$@"
