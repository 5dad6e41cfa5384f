"""The files a toolchain directory holds: cc/c++ wrappers running ccfilter.py, zig's binutils
under their usual names, strip, and a CMake toolchain file."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from xrel.storage.files import write_if_changed
from xrel.targets import Target
from xrel.zig import ccfilter
from xrel.zig.ccconfig import CcConfig

COMPILER_NAMES = {"cc": ("cc", "gcc", "clang"), "c++": ("c++", "g++", "clang++")}
# wrapper name -> zig subcommand
BINUTILS = {"ar": "ar", "ranlib": "ranlib", "objcopy": "objcopy", "dlltool": "dlltool", "rc": "rc", "windres": "rc"}


def filter_python() -> str:
    """The interpreter the compiler wrappers run (the filter needs only its stdlib): this one, its
    links resolved, so `xrel` and `python -m xrel` (python3 vs python in a venv) share one toolchain."""
    return os.path.realpath(sys.executable)


def write_wrappers(directory: Path, target: Target, zig: Path, configs: dict[str, CcConfig]) -> None:
    """The compiler wrappers (one config per mode: "cc", "c++"), binutils and strip; unchanged files are left alone."""
    python = shlex.quote(filter_python())
    script = shlex.quote(str(Path(ccfilter.__file__).resolve()))
    for mode, config in configs.items():
        body = (
            f"#!/bin/sh\n# xrel: zig as the C compiler for {target.id}\n"
            f"exec {python} -S -E {script} {config.to_arg()} \"$@\"\n"
        )
        for name in COMPILER_NAMES[mode]:
            write_if_changed(directory / name, body, 0o755)
    quoted_zig = shlex.quote(str(zig))
    for name, sub in BINUTILS.items():
        write_if_changed(directory / name, f"#!/bin/sh\nexec {quoted_zig} {sub} \"$@\"\n", 0o755)
    write_if_changed(directory / "strip", _strip_script(target, quoted_zig), 0o755)


def _strip_script(target: Target, quoted_zig: str) -> str:
    if target.os == "macos":
        # Mach-O files are never modified after link: zig ad-hoc signs arm64 binaries.
        return "#!/bin/sh\n# Mach-O: stripping would break the code signature; left as linked\nexit 0\n"
    return (
        "#!/bin/sh\nfor f; do case \"$f\" in -*) ;; *) "
        f"{quoted_zig} objcopy --strip-all \"$f\" \"$f\" || exit $?;; esac; done\n"
    )


def cmake_toolchain(directory: Path, target: Target, zig_version: object, roots: list[Path]) -> str:
    """A CMake toolchain file using the wrappers in `directory`, finding packages under `roots`."""
    d = directory
    system, processor = target.cmake_system
    lines = [
        f"# xrel: CMake toolchain for {target.id} (zig {zig_version})",
        f"set(CMAKE_SYSTEM_NAME {system})",
        f"set(CMAKE_SYSTEM_PROCESSOR {processor})",
        f'set(CMAKE_C_COMPILER "{d / "cc"}")',
        f'set(CMAKE_CXX_COMPILER "{d / "c++"}")',
        f'set(CMAKE_AR "{d / "ar"}" CACHE FILEPATH "archiver")',
        f'set(CMAKE_RANLIB "{d / "ranlib"}" CACHE FILEPATH "ranlib")',
        f'set(CMAKE_STRIP "{d / "strip"}" CACHE FILEPATH "strip")',
        # CMake looks for llvm-ar next to a Clang for IPO builds and finds the host's (measured:
        # /usr/bin/llvm-ar, another LLVM than zig's): zig's own for C and C++
        *(f'set(CMAKE_{lang}_COMPILER_{tool.upper()} "{d / tool}" CACHE FILEPATH "{tool}")'
          for lang in ("C", "CXX") for tool in ("ar", "ranlib")),
        "set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)",
    ]
    if roots:
        lines.append("set(CMAKE_FIND_ROOT_PATH " + " ".join(f'"{r}"' for r in roots) + ")")
    if target.os == "windows":
        lines.append(f'set(CMAKE_RC_COMPILER "{d / "rc"}")')
    return "\n".join(lines) + "\n"
