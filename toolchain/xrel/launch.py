"""The `xrel` command's entry point. A build's mix VM boots for ~0.35 s: when this very command line,
in this directory, built a project before, its early VM (release/early_mix.py) is started first,
before the command line interface is even imported."""

from __future__ import annotations

import sys


def main() -> None:
    if "build" in sys.argv[1:]:
        from xrel.release import early_mix

        early_mix.start_for_command(sys.argv[1:])
    from xrel.cli import main as cli

    cli(prog_name="xrel")
