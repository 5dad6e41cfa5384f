"""The `xrel` command: click commands that parse arguments, call the library and print.

app.py holds the group and what every command shares; each other module registers its commands on it.
"""

import xrel.cli.dist  # noqa: F401  (xrel dist, xrel verify)
import xrel.cli.publish  # noqa: F401  (xrel publish)
import xrel.cli.signing  # noqa: F401  (xrel keygen)
from xrel.cli import ci, commands, project, runtime  # noqa: F401  (register their commands on the group)
from xrel.cli.app import main

__all__ = ["main"]
