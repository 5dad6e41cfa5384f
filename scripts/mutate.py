#!/usr/bin/env python3
"""Prove the core rule registries are tested: delete one rule at a time, run the fast tests, expect a failure.

Each registry is a module-level tuple written one rule per line (`    rule_name,`). For every rule the
script deletes that line in a scratch copy of the checkout (toolchain/, tests/, recipes/, pyproject.toml),
runs the fast tests that import the module (all fast tests if none does) with the copy's toolchain/ first
on PYTHONPATH, and reports whether the mutant was killed. Exit 1 when a mutant survives, a registry is
missing, or the unmutated copy already fails.

    .venv/bin/python scripts/mutate.py [--all-tests] [REGISTRY ...]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("toolchain", "tests", "recipes", "pyproject.toml")
FAST = ["-m", "not slow and not network", "-x", "-q", "-p", "no:cacheprovider"]
TIMEOUT = 900


@dataclass(frozen=True)
class Registry:
    label: str
    path: str  # relative to the checkout
    name: str  # the tuple's name

    @property
    def module(self) -> str:
        return self.path.removeprefix("toolchain/").removesuffix(".py").replace("/", ".")


REGISTRIES = (
    Registry("inspection CHECKS", "toolchain/xrel/inspection/check.py", "CHECKS"),
    Registry("ccfilter RULES", "toolchain/xrel/zig/ccfilter.py", "RULES"),
    Registry("compat RULES", "toolchain/xrel/release/compat.py", "RULES"),
)
ENTRY = re.compile(r"^    ([A-Za-z_]\w*),$")


def rule_lines(source: str, name: str) -> dict[str, int] | None:
    """Rule name -> line index of each `    rule,` line of tuple `name`, or None when there is no such tuple."""
    lines = source.splitlines()
    start = re.compile(rf"^{re.escape(name)}(\s*:[^=]+)?\s*=\s*\($")
    for i, line in enumerate(lines):
        if start.match(line):
            found = {}
            for j in range(i + 1, len(lines)):
                if lines[j].startswith(")"):
                    return found or None
                m = ENTRY.match(lines[j])
                if m:
                    found[m.group(1)] = j
            return None
    return None


def tests_for(copy: Path, registry: Registry, all_tests: bool) -> list[str]:
    """The test files that import the registry's module (all of tests/ when none does or when asked)."""
    if all_tests:
        return ["tests"]
    package, _, leaf = registry.module.rpartition(".")
    uses = re.compile(rf"\b{re.escape(registry.module)}\b|from {re.escape(package)} import [^\n]*\b{leaf}\b")
    files = sorted(str(p.relative_to(copy)) for p in (copy / "tests").glob("test_*.py") if uses.search(p.read_text()))
    return files or ["tests"]


def run_tests(copy: Path, targets: list[str]) -> tuple[bool, float, str]:
    """(passed, seconds, first failure) of the fast tests in `targets`, importing the copy's code."""
    env = {**os.environ, "PYTHONPATH": str(copy / "toolchain"), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", *FAST, *targets], cwd=copy, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)
        passed, output = proc.returncode == 0, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        passed, output = False, f"timed out after {TIMEOUT} s"  # a mutant that hangs the tests is caught too
    failures = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return passed, time.monotonic() - start, (failures or output.splitlines()[-1:] or [""])[0]


def make_copy(dest: Path) -> Path:
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    env = {**os.environ, "PYTHONPATH": str(dest / "toolchain")}
    where = subprocess.run([sys.executable, "-c", "import xrel; print(xrel.__file__)"], env=env, cwd=dest,
                           capture_output=True, text=True, check=True).stdout.strip()
    if not where.startswith(str(dest)):
        sys.exit(f"the copy's code is not the one imported (xrel from {where}); is xrel installed non-editable?")
    return dest


def mutate(copy: Path, registry: Registry, all_tests: bool) -> list[tuple[str, str, float, str]]:
    """(rule, outcome, seconds, first failure) rows for one registry: a baseline row, then one per deleted rule."""
    target = copy / registry.path
    source = target.read_text() if target.exists() else ""
    rules = rule_lines(source, registry.name)
    if not rules:
        return [("-", "missing", 0.0, f"no `{registry.name} = (` tuple of `    rule,` lines in {registry.path}")]
    tests = tests_for(copy, registry, all_tests)
    print(f"# {registry.label}: {len(rules)} rules, tests {' '.join(tests)}", flush=True)
    passed, seconds, failure = run_tests(copy, tests)
    rows = [("(unmutated)", "passes" if passed else "FAILS", seconds, "" if passed else failure)]
    if not passed:
        return rows
    lines = source.splitlines(keepends=True)
    try:
        for rule, index in rules.items():
            target.write_text("".join(lines[:index] + lines[index + 1:]))
            passed, seconds, failure = run_tests(copy, tests)
            rows.append((rule, "SURVIVED" if passed else "killed", seconds, "" if passed else failure))
    finally:
        target.write_text(source)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("registries", nargs="*", help="labels to run (default: all)")
    parser.add_argument("--all-tests", action="store_true", help="run every fast test per mutant, not just the "
                                                                   "files that import the module")
    args = parser.parse_args()
    unknown = set(args.registries) - {r.label for r in REGISTRIES}
    if unknown:
        parser.error(f"no registry {', '.join(sorted(unknown))}; known: {', '.join(r.label for r in REGISTRIES)}")
    chosen = [r for r in REGISTRIES if not args.registries or r.label in args.registries]
    bad = 0
    print(f"{'registry':<20} {'rule':<28} {'result':<9} {'seconds':>7}  first failure", flush=True)
    with tempfile.TemporaryDirectory(prefix="xrel-mutate-") as tmp:
        copy = make_copy(Path(tmp))
        for registry in chosen:
            for rule, outcome, seconds, failure in mutate(copy, registry, args.all_tests):
                bad += outcome in ("missing", "FAILS", "SURVIVED")
                failure = failure.removeprefix("FAILED ").split(" - ")[0]
                print(f"{registry.label:<20} {rule:<28} {outcome:<9} {seconds:>7.1f}  {failure[:90]}", flush=True)
    return 1 if bad or not chosen else 0


if __name__ == "__main__":
    sys.exit(main())
