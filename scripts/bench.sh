#!/usr/bin/env bash
# Runs one benchmark with xrel as installed in the project's venv (set up by scripts/setup.sh):
#   scripts/bench.sh build [--runs 3] [--project big|small] [--case edit|clean] [--memory] [--tarball]   scripts/bench_build.py
#   scripts/bench.sh fetch [--runs 15]     scripts/bench_fetch.py
#   scripts/bench.sh cli [--runs 15]       scripts/bench_cli.py (startup of --help, targets, cached fetch-erts)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
name="${1:?usage: scripts/bench.sh build|fetch|cli [ARGS...]}"; shift
venv=$("$here/scripts/setup.sh")
export PATH="$venv/bin:$PATH"
exec "$venv/bin/python" "$here/scripts/bench_$name.py" "$@"
