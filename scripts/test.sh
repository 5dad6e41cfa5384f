#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh), then runs the whole test suite.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/setup.sh"
cd "$here"
exec python3 -m pytest tests "$@"
