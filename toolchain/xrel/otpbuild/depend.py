"""The compiler wrapper's -M/-MM helper (standard library only: run as a plain script).

`zig cc -M` with several sources loses the target libc's include paths: run it once per source
and concatenate what each prints. Usage: depend.py N ZIG-COMMAND(N words) ARGS...
"""

from __future__ import annotations

import subprocess
import sys

SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".S", ".s")
VALUE_OPTIONS = ("-o", "-MF", "-MT", "-MQ", "-include", "-x", "-I", "-D", "-isystem")


def split_sources(args: list[str]) -> tuple[list[str], list[str]]:
    """(options, sources) of a compiler command line."""
    options, sources = [], []
    for i, arg in enumerate(args):
        takes_value = i > 0 and args[i - 1] in VALUE_OPTIONS
        (sources if arg.endswith(SOURCE_SUFFIXES) and not takes_value else options).append(arg)
    return options, sources


def depend_each(base: list[str], args: list[str]) -> int:
    """Run the dependency call once per source; the first failure's exit code, else 0."""
    options, sources = split_sources(args)
    for source in sources or [None]:
        sys.stdout.flush()
        code = subprocess.call([*base, *options, *([source] if source else [])])
        if code:
            return code
    return 0


if __name__ == "__main__":
    count = int(sys.argv[1])
    sys.exit(depend_each(sys.argv[2:2 + count], sys.argv[2 + count:]))
