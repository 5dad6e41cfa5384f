"""The compiler wrappers OTP's and OpenSSL's builds use: zig for the target, plus the recipe's
flags and zig's quirks (a -M/-MM call with several sources runs once per source, since zig
loses the target's libc include paths otherwise; a precompiled header is written empty, since
zig cannot write one and clang then parses the header itself)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from xrel.otpbuild import depend
from xrel.otpbuild.recipe import TargetBuild
from xrel.storage.files import write_if_changed


def _compiler(zig: str, mode: str, build: TargetBuild) -> str:
    """The sh wrapper for `zig cc`/`zig c++`: cheap for the thousands of ordinary calls."""
    base = [zig, mode, "-target", build.zig_triple, *build.cflags]
    helper = [sys.executable, "-S", "-E", str(Path(depend.__file__).resolve()), str(len(base)), *base]
    return (f"#!/bin/sh\n# xrel build-erts: zig {mode} for {build.target}\nprev= compile=\n"
            "for a; do\n"
            '  if [ "$prev" = -o ]; then case "$a" in *.gch) : > "$a"; exit 0;; esac; fi\n'
            f'  case "$a" in -M|-MM) exec {shlex.join(helper)} "$@";; -c) compile=1;; esac\n'
            '  prev=$a\ndone\n'
            f'[ -n "$compile" ] && exec {shlex.join([*base, *build.compile_cflags])} "$@"\n'
            f'exec {shlex.join(base)} "$@"\n')


def write_tools(directory: Path, zig: str, build: TargetBuild) -> dict[str, str]:
    """Write cc, c++, ar and ranlib into `directory`; their paths by role."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, mode in (("cc", "cc"), ("c++", "c++")):
        write_if_changed(directory / name, _compiler(zig, mode, build), 0o755)
    for name in ("ar", "ranlib"):
        write_if_changed(directory / name, f"#!/bin/sh\nexec {shlex.quote(zig)} {name} \"$@\"\n", 0o755)
    return {"cc": str(directory / "cc"), "c++": str(directory / "c++"),
            "ar": str(directory / "ar"), "ranlib": str(directory / "ranlib")}
