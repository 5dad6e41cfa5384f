#!/usr/bin/env python3
"""`xrel dist` against `xrel build` for the same targets, warm caches, in turns (build, dist, build, dist ...)
so both see the same machine: prints each one's median, the median of the per-pair ratio dist/build and of
the difference dist - build (issue 13's budget: signing, < 1 s with an unencrypted key).

Usage: scripts/bench_dist.py PROJECT_DIR [TARGET ...] [--runs N] [--unsigned]
(default targets: armhf arm64 x86_64-linux-gnu; default: signed with a fresh unencrypted key, 5 pairs).
The xrel measured is the one `python -m xrel` imports (PYTHONPATH=toolchain for the source tree).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

XREL = (sys.executable, "-m", "xrel", "-q")


def timed(args: list[str], cwd: Path, env: dict | None = None) -> float:
    started = time.monotonic()
    subprocess.run([*XREL, *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.monotonic() - started


def signing_env(keys: Path) -> dict:
    """The environment with XREL_SIGNING_KEY set to a fresh unencrypted key (what CI uses)."""
    subprocess.run([*XREL, "keygen", "--unencrypted", "--out", str(keys), "--name", "bench"], check=True,
                   stdout=subprocess.DEVNULL)
    return {**os.environ, "XREL_SIGNING_KEY": str(keys / "bench.key")}


def pairs(project: Path, options: list[str], runs: int, env: dict) -> list[tuple[float, float]]:
    """`runs` (build, dist) pairs after one warm-up of each; every dist starts without dist/."""
    timed(["build", *options], project)
    shutil.rmtree(project / "dist", ignore_errors=True)
    timed(["dist", *options], project, env)
    measured = []
    for _ in range(runs):
        build = timed(["build", *options], project)
        shutil.rmtree(project / "dist", ignore_errors=True)
        measured.append((build, timed(["dist", *options], project, env)))
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", nargs="?", default=".")
    parser.add_argument("targets", nargs="*", default=["armhf", "arm64", "x86_64-linux-gnu"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--unsigned", action="store_true")
    args = parser.parse_args()
    project = Path(args.project).resolve()
    options = [arg for t in args.targets for arg in ("--target", t)]
    with tempfile.TemporaryDirectory(prefix="xrel-bench-keys-") as keys:
        env = dict(os.environ) if args.unsigned else signing_env(Path(keys))
        measured = pairs(project, options, args.runs, env)
    builds, dists = [b for b, _d in measured], [d for _b, d in measured]
    ratio = statistics.median(d / b for b, d in measured)
    extra = statistics.median(d - b for b, d in measured)
    print(f"targets: {' '.join(args.targets)}   {'unsigned' if args.unsigned else 'signed'}   "
          f"{args.runs} pairs, warm")
    print(f"xrel build: median {statistics.median(builds):.2f} s (min {min(builds):.2f})   "
          f"xrel dist: median {statistics.median(dists):.2f} s (min {min(dists):.2f})")
    print(f"ratio dist/build: {ratio:.2f}   dist - build: {extra:+.2f} s")


if __name__ == "__main__":
    main()
