"""What a release with the node agent carries besides lib/xrel_node-*: bin/xrel-node."""

from __future__ import annotations

import os
from pathlib import Path

from xrel.errors import BuildError
from xrel.node.agent import APP, NodeAgent
from xrel.node.script import render_node_script


def add_node_files(release_dir: Path, release: str, agent: NodeAgent) -> list[str]:
    """bin/xrel-node for the release; the agent application must be in it. Returns notes."""
    if not any(release_dir.glob(f"lib/{APP}-*/ebin/{APP}.app")):
        raise BuildError(f"mix left the node agent out of the release {release}",
                         "report this: xrel adds xrel_node to every release's applications")
    config = agent.config
    script = render_node_script(release, config.service or release, config.probation, config.max_attempts,
                                config.restart_sec)
    target = release_dir / "bin" / "xrel-node"
    target.write_text(script)
    os.chmod(target, 0o755)
    return [f"node agent: feed {config.feed}, every {config.interval} s, probation {config.probation} s"]
