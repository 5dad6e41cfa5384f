"""`bin/xrel-node` for a release: the xrel-node.sh template with the release's names and defaults filled in."""

from __future__ import annotations

import re
from importlib import resources

from xrel.errors import UsageError

TEMPLATE = "xrel-node.sh"
# its install command, a file of its own (the script is one file on the node): it takes this line's place
INSTALL_PART, INSTALL_LINE = "xrel-node-install.sh", "# @INSTALL@ (xrel-node-install.sh: the install command)\n"
# mix release names are Elixir atoms; systemd unit names allow a little more
_REL_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_APP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def template_text() -> str:
    """The whole template (its install part in place), placeholders and all."""
    folder = resources.files("xrel.node")
    text = folder.joinpath(TEMPLATE).read_text(encoding="utf-8")
    if text.count(INSTALL_LINE) != 1:
        raise AssertionError(f"{TEMPLATE} must hold the line {INSTALL_LINE.strip()!r} once")
    return text.replace(INSTALL_LINE, folder.joinpath(INSTALL_PART).read_text(encoding="utf-8"))


def render_node_script(rel_name: str, app: str, probation: int, max_attempts: int, restart_sec: int) -> str:
    """The script text for `bin/xrel-node`: release `rel_name`, service `app`, and the node's defaults
    (probation seconds, starts allowed during probation, seconds between restarts)."""
    if not _REL_NAME.match(rel_name):
        raise UsageError(f"release name {rel_name!r} cannot be used by bin/xrel-node: use lowercase letters, digits, _")
    if not _APP.match(app) or app.endswith(".service"):
        raise UsageError(f"service name {app!r} is not a systemd unit name: use letters, digits, '_', '.', '-'")
    numbers = {"probation": probation, "max_attempts": max_attempts, "restart_sec": restart_sec}
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"[node] {name} = {value!r}: a whole number of at least 0 is needed")
    if max_attempts < 1:
        raise UsageError("[node] max_attempts must be at least 1: the new version needs one start")
    values = {"@REL_NAME@": rel_name, "@APP@": app, "@PROBATION@": str(probation),
              "@MAX_ATTEMPTS@": str(max_attempts), "@RESTART_SEC@": str(restart_sec)}
    text = template_text()
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text
