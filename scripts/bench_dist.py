#!/usr/bin/env python3
"""`xrel dist` against `xrel build` for the same targets in one run, warm caches: prints both times and the ratio.

Usage: scripts/bench_dist.py PROJECT_DIR [TARGET ...]   (default targets: armhf arm64 x86_64-linux-gnu)
XREL_SIGNING_KEY, when set, makes the dist signed (the cost the issue allows on top of the build).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

XREL = (sys.executable, "-m", "xrel", "-q")


def timed(args: list[str], cwd: Path) -> float:
    started = time.monotonic()
    subprocess.run([*XREL, *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> None:
    project = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    targets = sys.argv[2:] or ["armhf", "arm64", "x86_64-linux-gnu"]
    options = [arg for t in targets for arg in ("--target", t)]
    timed(["build", *options], project)  # warm: runtimes, toolchains, compiled code
    build = min(timed(["build", *options], project) for _ in range(3))
    dists = []
    for _ in range(3):
        shutil.rmtree(project / "dist", ignore_errors=True)
        dists.append(timed(["dist", *options], project))
    dist = min(dists)
    print(f"targets: {' '.join(targets)}")
    print(f"xrel build: {build:.2f} s   xrel dist: {dist:.2f} s   ratio dist/build: {dist / build:.2f}")


if __name__ == "__main__":
    main()
