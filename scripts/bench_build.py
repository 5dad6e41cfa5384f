#!/usr/bin/env python3
"""Benchmark `xrel build` against the host's own `mix release`, in one process, warm caches.

On a copy of the nif_make fixture (a C NIF + a C port program built by elixir_make's
compiler), measures the median of N runs of:
  host   `mix release`            from a clean _build ("cold") and again with nothing changed ("warm")
  xrel   build for 1 foreign target and for 3 targets, from fresh build trees ("cold") and again ("warm")
and prints each as a ratio of the host release. Runtimes, sysroots and zig's cache are warmed
first, so what is measured is the build itself. Goals (issue 5): 1 target <= 1.3x the host
release; each extra target <= 15% of the host release.

Usage: python scripts/bench_build.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "tests"))

import xrel  # noqa: E402
from helpers import copy_fixtures, host_release  # noqa: E402
from xrel import progress  # noqa: E402
from xrel.storage import cache  # noqa: E402

ONE = ["arm-linux-gnueabihf"]
THREE = ["arm-linux-gnueabihf", "aarch64-linux-gnu", "x86_64-linux-gnu"]


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def median_of(runs: int, prepare, func) -> float:
    samples = []
    for _ in range(runs):
        prepare()
        samples.append(timed(func))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    progress.set_quiet(True)
    work = Path(tempfile.mkdtemp(prefix="xrel-bench-"))
    project = copy_fixtures(work, "nif_make") / "nif_make"
    out = work / "out"

    def host() -> None:
        result = host_release(project)
        if result.returncode != 0:
            raise SystemExit(result.stdout + result.stderr)

    def clean_host() -> None:
        shutil.rmtree(project / "_build", ignore_errors=True)

    def clean_trees() -> None:
        for entry in (cache.cache_root() / "builds").glob(f"{project.name}-*"):
            shutil.rmtree(entry)

    def build(targets):
        return lambda: xrel.build(project, targets, out=out)

    source = project / "lib" / "fixture.ex"
    edits = iter(range(10**6))

    def edit() -> None:
        source.write_text(source.read_text() + f"\n# edit {next(edits)}\n")

    print("warming caches (runtimes, sysroots, zig) ...", flush=True)
    build(THREE)()
    host()

    rows = [
        ("host mix release, clean _build", median_of(args.runs, clean_host, host)),
        ("host mix release, nothing changed", median_of(args.runs, lambda: None, host)),
        ("host mix release, one file changed", median_of(args.runs, edit, host)),
        ("xrel build, 1 target, fresh trees", median_of(args.runs, clean_trees, build(ONE))),
        ("xrel build, 1 target, nothing changed", median_of(args.runs, lambda: None, build(ONE))),
        ("xrel build, 3 targets, fresh trees", median_of(args.runs, clean_trees, build(THREE))),
        ("xrel build, 3 targets, nothing changed", median_of(args.runs, lambda: None, build(THREE))),
        ("xrel build, 1 target, one file changed", median_of(args.runs, edit, build(ONE))),
        ("xrel build, 3 targets, one file changed", median_of(args.runs, edit, build(THREE))),
    ]
    t = dict(rows)
    cold, warm = t["host mix release, clean _build"], t["host mix release, nothing changed"]
    edited = t["host mix release, one file changed"]

    def baseline(name: str) -> float:
        return cold if "clean" in name or "fresh" in name else edited if "changed" in name and "one" in name else warm

    print(f"\n{'measurement':<42}{'seconds':>9}{'x host (same state)':>22}")
    for name, secs in rows:
        print(f"{name:<42}{secs:>9.2f}{secs / baseline(name):>21.2f}x")
    for state, base in (("fresh trees", cold), ("nothing changed", warm), ("one file changed", edited)):
        one, three = t[f"xrel build, 1 target, {state}"], t[f"xrel build, 3 targets, {state}"]
        extra = (three - one) / 2
        print(f"\n{state}: 1 target = {one / base:.2f}x host (goal <= 1.3x); "
              f"each extra target = {extra:.2f}s = {100 * extra / base:.0f}% of host (goal <= 15%)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("MIX_ENV", "prod")
    main()
