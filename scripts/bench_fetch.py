#!/usr/bin/env python3
"""How long a cached runtime costs: `fetch_runtime` in-process and `xrel fetch-erts` as a command,
against baselines measured the same way (reading the runtime's metadata file; `python -c pass`).

Uses the Debian armhf runtime (fetched once through apt if it is not cached yet); where apt
cannot reach Debian, the host's own OTP root through `--source path:`. The goal: a cached fetch
well under a second. Exits 1 when the command's median is a second or more.

    python scripts/bench_fetch.py [--runs 15] [--target arm-linux-gnueabihf] [--otp 25]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from xrel.errors import XrelError
from xrel.host import host_erlang
from xrel.runtimes import fetch_runtime
from xrel.runtimes.normalize import METADATA


def median_seconds(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def command(*args: str) -> Callable[[], None]:
    return lambda: subprocess.run(args, check=True, capture_output=True)


def cached_runtime_source(target: str, otp: str) -> tuple[str, str, str | None]:
    """(target, otp, source) of a runtime that is in the cache now, fetching it if needed."""
    try:
        fetch_runtime(target, otp=otp, source="debian")
        return target, otp, "debian"
    except XrelError as e:
        print(f"Debian runtime unavailable ({e.message}); using the host's OTP root", file=sys.stderr)
    host = host_erlang()
    source = f"path:{host.root}"
    fetch_runtime("host", otp=None, source=source)
    return "host", host.otp_release, source


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--target", default="arm-linux-gnueabihf")
    parser.add_argument("--otp", default="25")
    args = parser.parse_args()
    target, otp, source = cached_runtime_source(args.target, args.otp)
    runtime = fetch_runtime(target, otp=otp, source=source)
    metadata = Path(runtime.root) / METADATA
    xrel = [sys.executable, "-m", "xrel", "-q", "fetch-erts", target, "--otp", otp, "--source", source]
    rows = [
        ("baseline: read xrel-runtime.json", median_seconds(metadata.read_bytes, args.runs)),
        ("fetch_runtime, cached, --otp given",
         median_seconds(lambda: fetch_runtime(target, otp=otp, source=source), args.runs)),
        ("baseline: python -c pass", median_seconds(command(sys.executable, "-c", "pass"), args.runs)),
        ("python -c 'import xrel.cli'", median_seconds(command(sys.executable, "-c", "import xrel.cli"), args.runs)),
        ("xrel fetch-erts (cached)", median_seconds(command(*xrel), args.runs)),
        ("xrel fetch-erts --json (cached)", median_seconds(command(*xrel, "--json"), args.runs)),
    ]
    if source == "debian":
        no_otp = [sys.executable, "-m", "xrel", "-q", "fetch-erts", target]
        rows.append(("xrel fetch-erts, no --otp (host major)", median_seconds(command(*no_otp), args.runs)))
    print(f"runtime: {runtime.root} ({runtime.source}, OTP {runtime.otp_version}); median of {args.runs} runs")
    in_process, process = rows[0][1], rows[2][1]
    for label, seconds in rows:
        baseline = in_process if label.startswith(("baseline: read", "fetch_runtime")) else process
        print(f"  {label:<42} {seconds * 1000:9.2f} ms   x{seconds / baseline:6.1f} of its baseline")
    worst = max(seconds for label, seconds in rows if label.startswith("xrel"))
    print(f"slowest cached command: {worst * 1000:.0f} ms ({'ok' if worst < 1 else 'TOO SLOW'}: target < 1000 ms)")
    return 0 if worst < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
