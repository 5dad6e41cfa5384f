"""The `xrel` command: click commands that parse arguments, call the library and print.

app.py holds the group and what every command shares; each other module registers its commands on it.
A command's module is imported only when the command runs (or for --help), so `xrel targets` loads
no other command's code. To add a command: register it in its module with `@command(...)` and add a
line naming it and its module below.
"""

from xrel.cli.app import main

# command (or command group) name -> the module that registers it
COMMANDS = {
    "appup": "xrel.cli.appup",
    "build": "xrel.cli.commands",
    "build-erts": "xrel.cli.build_erts",
    "cache": "xrel.cli.runtime",
    "ci": "xrel.cli.ci",
    "dist": "xrel.cli.dist",
    "doctor": "xrel.cli.commands",
    "fetch-erts": "xrel.cli.runtime",
    "init": "xrel.cli.project",
    "inspect": "xrel.cli.commands",
    "keygen": "xrel.cli.signing",
    "lock": "xrel.cli.commands",
    "otp-versions": "xrel.cli.runtime",
    "publish": "xrel.cli.publish",
    "run": "xrel.cli.commands",
    "smoke": "xrel.cli.commands",
    "stop-kept-vms": "xrel.cli.commands",
    "targets": "xrel.cli.commands",
    "verify": "xrel.cli.dist",
    "zig-env": "xrel.cli.commands",
}
main.lazy.update(COMMANDS)

__all__ = ["main", "COMMANDS"]
