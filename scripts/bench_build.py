#!/usr/bin/env python3
"""Benchmark the `xrel build` command against the host's own `mix release`, in turns, warm caches.

Projects: "big", the nif_make fixture (a C NIF and a C port program built by elixir_make) with
300 generated modules beside it, and "small", the nif_make fixture alone. Cases, run in turns
(host, xrel 1 target, xrel 3 targets, host, ...) so all see the same machine:
  edit   one module changed before each run (the edit loop)
  clean  host from a clean _build; xrel from fresh build trees and an empty output dir
For each it prints the medians in seconds and, round by round, xrel 1 target / host and
(3 targets - 1 target) / 2 / host (each extra target), medians of those ratios. Goals (issue 16):
edit loop 1 target <= 1.25x host, each extra <= 15%; clean 1 target <= 1.1x, each extra <= 5%;
small project's edit loop <= 1.5x. --memory also samples the summed RSS and PSS (shared pages
split between the processes sharing them) of the whole process tree of a clean host `mix release`
and of a clean 3-target `xrel build` (goal: xrel <= 2x host).

`xrel build` writes release dirs only (as `mix release` without its :tar step); --tarball times
`xrel build --tarball` (each target's tarball too, the bytes `xrel dist` ships) instead.
xrel runs as from a terminal: the mix VM of the first target's next release, and the extra targets'
compile VM, are kept between builds (XREL_KEEP_MIX=600); each round waits until the mix VM is ready,
so no run shares the machine with its boot. --no-keep-mix times xrel with XREL_KEEP_MIX=0 (each
build boots its early VM), --no-early-mix with XREL_EARLY_MIX=0 (each mix run boots its VM when it
starts).

Usage: python scripts/bench_build.py [--runs 3] [--project big|small|both] [--case edit|clean|both] [--memory]
                                     [--tarball] [--no-keep-mix] [--no-early-mix]
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "tests"))

import xrel  # noqa: E402  (the xrel the commands run: this interpreter's)
from helpers import copy_fixtures, host_release  # noqa: E402
from xrel import progress  # noqa: E402
from xrel.release import compile_server, early_mix  # noqa: E402
from xrel.release.workspace import project_key  # noqa: E402
from xrel.storage import cache  # noqa: E402

ONE = ["arm-linux-gnueabihf"]
THREE = ["arm-linux-gnueabihf", "aarch64-linux-gnu", "x86_64-linux-gnu"]
# as installed for a user: byte-compiled modules allowed (compileall runs first)
XREL_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"XREL_KEEP_MIX": "600"}
GOALS = {("big", "edit"): (1.25, 0.15), ("big", "clean"): (1.1, 0.05), ("small", "edit"): (1.5, 0.15),
         ("small", "clean"): (1.1, 0.05)}


def generate(dest: Path, modules: int) -> Path:
    """nif_make with `modules` generated modules of 40 small functions each under lib/gen/."""
    project = copy_fixtures(dest, "nif_make") / "nif_make"
    gen = project / "lib" / "gen"
    gen.mkdir(exist_ok=True)
    for i in range(modules):
        funcs = "\n".join(f"  def f{j}(x), do: x * {j} + {i}\n  def g{j}(%{{a: a}} = m), do: Map.put(m, :a, a + {j})"
                          for j in range(20))
        (gen / f"m{i}.ex").write_text(f"defmodule Gen.M{i} do\n  @moduledoc \"m{i}\"\n{funcs}\nend\n")
    return project


class Bench:
    """One project copy: the host's and xrel's builds of it, and what each case does before a run."""

    def __init__(self, project: Path, flags: tuple[str, ...] = ()) -> None:
        self.project, self.out, self.flags = project, project.parent / "out", flags
        gen = project / "lib" / "gen" / "m0.ex"
        self.source = gen if gen.is_file() else project / "lib" / "fixture.ex"
        self.edits = 0

    def host(self) -> None:
        result = host_release(self.project)
        if result.returncode != 0:
            raise SystemExit(result.stdout + result.stderr)

    def xrel(self, targets: list[str]):
        """`xrel build` as a user runs it: a new process each time (its startup and imports count)."""
        args = [sys.executable, "-m", "xrel", "-q", "build", *(f"--target={t}" for t in targets),
                f"--out={self.out}", *self.flags, str(self.project)]
        return lambda: subprocess.run(args, check=True, env=XREL_ENV, stdout=subprocess.DEVNULL)

    def settle(self) -> None:
        """Wait until the VM kept for xrel's next build has booted (it boots once xrel has exited)."""
        socket, deadline = early_mix.kept_socket(self.project), time.monotonic() + 10
        while XREL_ENV["XREL_KEEP_MIX"] != "0" and socket and not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    def edit(self) -> None:
        """A real change to one module: a new function (a comment would leave the same beam)."""
        self.settle()
        self.edits += 1
        text = self.source.read_text().rstrip()
        assert text.endswith("end")
        self.source.write_text(text[:-3] + f"  def bench_edit_{self.edits}, do: {self.edits}\nend\n")

    def clean_host(self) -> None:
        self.settle()
        shutil.rmtree(self.project / "_build", ignore_errors=True)

    def clean_xrel(self) -> None:
        self.settle()
        self.forget_xrel()

    def forget_xrel(self) -> None:
        """xrel's build trees of the project and its output dir gone."""
        shutil.rmtree(cache.cache_root() / "builds" / project_key(self.project, "prod"), ignore_errors=True)
        shutil.rmtree(self.out, ignore_errors=True)


def timed(prepare, func) -> float:
    prepare()
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def rounds(bench: Bench, case: str, runs: int) -> dict[str, list[float]]:
    """`runs` rounds of host, xrel 1 target, xrel 3 targets, each prepared for `case`."""
    prep_host, prep_xrel = (bench.edit, bench.edit) if case == "edit" else (bench.clean_host, bench.clean_xrel)
    samples: dict[str, list[float]] = {"host": [], "one": [], "three": []}
    for _ in range(runs):
        samples["host"].append(timed(prep_host, bench.host))
        samples["one"].append(timed(prep_xrel, bench.xrel(ONE)))
        samples["three"].append(timed(prep_xrel, bench.xrel(THREE)))
    return samples


def report(name: str, case: str, s: dict[str, list[float]], bench_flags: tuple[str, ...] = ()) -> None:
    one_goal, extra_goal = GOALS[(name, case)]
    ratios = [o / h for o, h in zip(s["one"], s["host"])]
    extras = [(t - o) / 2 / h for o, t, h in zip(s["one"], s["three"], s["host"])]
    ratio, extra = statistics.median(ratios), statistics.median(extras)
    med = {k: statistics.median(v) for k, v in s.items()}
    mode = " ".join(bench_flags) + " " if bench_flags else ""
    print(f"{name:<6}{case:<7}{mode}host {med['host']:6.2f}s  xrel 1 target {med['one']:6.2f}s  3 targets "
          f"{med['three']:6.2f}s  |  1 target {ratio:.2f}x host (goal <= {one_goal}x)  each extra "
          f"{100 * extra:.1f}% of host (goal <= {100 * extra_goal:.0f}%)", flush=True)
    print(f"{'':13}rounds: 1 target {' '.join(f'{r:.2f}x' for r in ratios)};  each extra "
          f"{' '.join(f'{100 * e:.1f}%' for e in extras)}", flush=True)


def tree_memory(pid: int) -> tuple[int, int]:
    """The summed resident memory of `pid` and all its descendants, from /proc, in bytes: (RSS, PSS).
    RSS counts a page shared by two processes (zig's driver and its clang child run one binary)
    twice; PSS splits it between them, so the sum is the memory the tree really holds."""
    rss = pss = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            one_rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            one_pss = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
        rss, pss = rss + one_rss * 1024, pss + one_pss * 1024
    return rss, pss


def peak_tree_memory(args: list[str], cwd: Path, env: dict) -> tuple[int, int]:
    """Run `args`, sampling its process tree's summed RSS and PSS every 10 ms; returns both peaks."""
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, done = (0, 0), threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            now = tree_memory(proc.pid)
            peak = (max(peak[0], now[0]), max(peak[1], now[1]))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    rc = proc.wait()
    done.set()
    sampler.join()
    if rc:
        raise SystemExit(f"{args} failed with exit {rc}")
    return peak


def memory(bench: Bench) -> None:
    """Peak summed RSS of a clean host `mix release` and of a clean 3-target `xrel build` (in a child process)."""
    env = {**os.environ, "MIX_ENV": "prod"}
    for var in ("MIX_EXS", "CC", "CXX", "ERTS_INCLUDE_DIR"):
        env.pop(var, None)
    bench.clean_host()
    host = peak_tree_memory(["mix", "release", "--overwrite"], bench.project, env)
    bench.clean_xrel()
    ours = peak_tree_memory([sys.executable, "-m", "xrel", "-q", "build", *(f"--target={t}" for t in THREE),
                             f"--out={bench.out}", str(bench.project)], bench.project,
                            XREL_ENV | {"XREL_KEEP_MIX": "0"})  # (a kept VM boots after the build)
    for i, kind in enumerate(("RSS", "PSS")):
        print(f"memory, clean build, peak summed {kind} of the process tree: host mix release "
              f"{host[i] / 2**20:.0f} MiB, xrel build 3 targets {ours[i] / 2**20:.0f} MiB = {ours[i] / host[i]:.2f}x "
              "(goal <= 2x)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--project", choices=["big", "small", "both"], default="both")
    parser.add_argument("--case", choices=["edit", "clean", "both"], default="both")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--modules", type=int, default=300)
    parser.add_argument("--tarball", action="store_true", help="time `xrel build --tarball` (tarballs too)")
    parser.add_argument("--no-keep-mix", action="store_true",
                        help="XREL_KEEP_MIX=0: no mix VM kept between builds (what keeping it saves)")
    parser.add_argument("--no-early-mix", action="store_true",
                        help="XREL_EARLY_MIX=0: every mix run boots its own VM (what the early VM saves)")
    args = parser.parse_args()
    if args.no_early_mix:
        XREL_ENV["XREL_EARLY_MIX"] = "0"
    if args.no_keep_mix or args.no_early_mix:
        XREL_ENV["XREL_KEEP_MIX"] = "0"
    modes = tuple(f"{k}={XREL_ENV[k]}" for k in ("XREL_KEEP_MIX", "XREL_EARLY_MIX") if XREL_ENV.get(k) == "0")
    progress.set_quiet(True)
    compileall.compile_dir(Path(xrel.__file__).parent, quiet=1)  # as pip does when it installs xrel
    work = Path(tempfile.mkdtemp(prefix="xrel-bench-"))
    try:
        for name in ("big", "small") if args.project == "both" else (args.project,):
            bench = Bench(generate(work / name, args.modules if name == "big" else 0),
                          ("--tarball",) if args.tarball else ())
            print(f"{name}: warming caches (runtimes, sysroots, zig) ...", flush=True)
            bench.xrel(THREE)()
            bench.host()
            for case in ("edit", "clean") if args.case == "both" else (args.case,):
                report(name, case, rounds(bench, case, args.runs), bench.flags + modes)
            if args.memory and name == "big":
                memory(bench)
            bench.settle()
            early_mix.dismiss(bench.project)
            compile_server.dismiss(bench.project)
            bench.forget_xrel()  # (its build trees would stay in the cache, the project gone)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("MIX_ENV", "prod")
    main()
