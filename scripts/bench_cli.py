#!/usr/bin/env python3
"""How fast `xrel` starts: `--help`, `targets` and a cached `fetch-erts TARGET`, each a fresh process.

Every round runs each command once, in turn, beside the baselines measured the same way with the same
interpreter (`python -c pass`, `python -c 'import click'`, `xrel --version`); it prints each command's
median wall time and the median of its ratio to `python -c pass` taken round by round, so a drift in
the machine's speed cancels out. Goal (issue 16): each of the three commands <= 0.15 s; exits 1 when
a median is over it.

The runtime of `fetch-erts` is fetched first when it is not cached (or, offline, a stub runtime in a
scratch cache stands in, with --otp). `python -X importtime -m xrel CMD` shows where a slow start goes.

    python scripts/bench_cli.py [--runs 15] [--target aarch64-linux-gnu]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 0.15  # seconds of wall time per command
PY = sys.executable


def stub_cache(scratch: Path, target: str) -> list[str]:
    """A cache holding only the metadata of an OTP 27 runtime for `target`: the fetch-erts args that find it."""
    root = scratch / "runtimes" / f"otp-27.3.4.1-{target}-debian"
    root.mkdir(parents=True)
    meta = {"target": target, "source": "debian", "otp_version": "27.3.4.1", "otp_major": 27,
            "erts_version": "15.2.7", "nif_version": "2.17"}
    (root / "xrel-runtime.json").write_text(json.dumps(meta))
    os.environ["XREL_CACHE_DIR"] = str(scratch)
    return ["fetch-erts", target, "--otp", "27"]


def fetch_args(target: str, scratch: Path) -> list[str]:
    """`fetch-erts TARGET` with its runtime in the cache (fetched now if needed)."""
    from xrel.errors import XrelError
    from xrel.runtimes import fetch_runtime
    from xrel.targets import Target

    name = Target.parse(target).name
    try:
        runtime = fetch_runtime(name)
        print(f"fetch-erts finds {runtime.root}")
        return ["fetch-erts", name]
    except XrelError as e:
        print(f"no runtime for {name} ({e.message}); a stub runtime in a scratch cache stands in", file=sys.stderr)
        return stub_cache(scratch, name)


def xrel_command() -> list[str]:
    """The `xrel` command a user runs: the installed entry point beside this interpreter (it imports
    less than `python -m xrel`, whose runpy costs ~15 ms), else `python -m xrel`."""
    script = Path(PY).parent / "xrel"
    return [str(script)] if script.is_file() and os.access(script, os.X_OK) else [PY, "-m", "xrel"]


def commands(fetch: list[str]) -> dict[str, list[str]]:
    xrel = xrel_command()
    return {
        "python -c pass": [PY, "-c", "pass"],
        "python -c 'import click'": [PY, "-c", "import click"],
        "xrel --version": [*xrel, "--version"],
        "xrel --help": [*xrel, "--help"],
        "xrel targets": [*xrel, "targets"],
        f"xrel {' '.join(fetch)}": [*xrel, *fetch],
    }


def wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(cmds: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    """Wall seconds of each command, one run of each per round (after one round not counted)."""
    for args in cmds.values():
        wall(args)
    times: dict[str, list[float]] = {label: [] for label in cmds}
    for _ in range(runs):
        for label, args in cmds.items():
            times[label].append(wall(args))
    return times


def report(times: dict[str, list[float]]) -> int:
    """Print medians and ratios; 1 when a measured xrel command (not --version) is over GOAL."""
    base = times["python -c pass"]
    print(f"{'command':<44} {'median':>9} {'min':>9} {'ratio':>7}  (ratio: to python -c pass, round by round)")
    slow = []
    for label, series in times.items():
        ratio = statistics.median(t / b for t, b in zip(series, base))
        median = statistics.median(series)
        goal = label.startswith("xrel") and label != "xrel --version"
        verdict = ("ok" if median <= GOAL else "TOO SLOW") if goal else "baseline"
        print(f"{label:<44} {median * 1000:7.1f}ms {min(series) * 1000:7.1f}ms {ratio:6.2f}x  {verdict}")
        if goal and median > GOAL:
            slow.append(label)
    print(f"goal: each xrel command <= {GOAL * 1000:.0f} ms: {'TOO SLOW: ' + ', '.join(slow) if slow else 'ok'}")
    return 1 if slow else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--target", default="aarch64-linux-gnu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xrel-bench-cli-") as scratch:
        cmds = commands(fetch_args(args.target, Path(scratch)))
        print(f"{PY}; xrel: {' '.join(xrel_command())}; {args.runs} rounds")
        return report(measure(cmds, args.runs))


if __name__ == "__main__":
    sys.exit(main())
