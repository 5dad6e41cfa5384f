"""Issue 14's proof end to end, under qemu-user on armhf: a release with the node agent, installed with
bin/xrel-node, supervised by `bin/xrel-node run`, fed by `xrel publish dir:` output over HTTPS with a test
CA. v1 → v2 switches and reports healthy (v1 kept, cookie kept); a v3 that cannot boot is rolled back to v2
by itself and not tried again; a node killed in the middle of a switch ends on a healthy version."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from helpers import runnable, untar
from node_harness import HEALTH, Node, install_root, project_with_feed, tarball

TARGET = "arm-linux-gnueabihf"
pytestmark = [pytest.mark.slow, runnable(TARGET)]


@pytest.fixture
def published(tmp_path):
    with project_with_feed(tmp_path, TARGET, extra_toml=HEALTH) as fed:
        yield fed


def test_switch_rollback_and_an_interrupted_switch(published, tmp_path):
    project, publish, ca = published
    publish("1.0.0")
    node = install_root(project, tmp_path, ca, TARGET)
    cookie = (node.root / "state" / "cookie").read_bytes()
    node.start()
    try:
        node.wait_for(r"start version=1\.0\.0")
        mark = len(node.log)
        publish("2.0.0")
        seconds = node.wait_for(r"healthy version=2\.0\.0", after=mark)
        print(f"\npublished 2.0.0 -> running and healthy under qemu: {seconds:.1f} s")
        assert node.state()["current"] == "2.0.0" and node.state()["previous"] == "1.0.0"
        assert (node.root / "versions" / "1.0.0" / "bin" / "node_app").is_file()  # kept for rollback
        assert (node.root / "state" / "cookie").read_bytes() == cookie
        assert not list((node.root / "state" / "downloads").iterdir())

        mark = len(node.log)
        publish("3.0.0")  # its application refuses to start
        node.wait_for(r"rollback from=3\.0\.0 to=2\.0\.0", after=mark)
        node.wait_for(r"start version=2\.0\.0", after=mark)
        state = node.state()
        assert (state["current"], state["phase"], state["rejected"]) == ("2.0.0", "rolled_back", "3.0.0")
        assert "3.0.0 crashed 2 times during probation" in state["reason"]
        assert os.readlink(node.root / "current") == "versions/2.0.0"
        time.sleep(8)  # several polls: 3.0.0 is not tried again
        assert node.log.count("switch from=2.0.0 to=3.0.0") == 1
    finally:
        node.stop()
    interrupted_switches(node, project, publish)


def interrupted_switches(node: Node, project: Path, publish) -> None:
    """Killed after the unpack, before the flip; and after the flip, before the health report."""
    publish("4.0.0")
    untar(tarball(project, "4.0.0", TARGET), node.root / "versions" / "4.0.0")  # the agent's unpack, complete
    mark = len(node.log)
    node.start()
    try:
        node.wait_for(r"healthy version=4\.0\.0", after=mark)
        assert node.state()["previous"] == "2.0.0"
    finally:
        node.stop()
    # the flip done, the VM killed before its agent reported: the next start finishes the probation
    lines = [line for line in (node.root / "state" / "node.state").read_text().splitlines()
             if not line.startswith(("phase=", "previous=", "previous_dir=", "probation_until="))]
    lines += ["phase=probation", "previous=2.0.0", "previous_dir=2.0.0", f"probation_until={int(time.time()) + 90}"]
    (node.root / "state" / "node.state").write_text("\n".join(lines) + "\n")
    mark = len(node.log)
    node.start()
    try:
        node.wait_for(r"healthy version=4\.0\.0", after=mark)
        assert node.state()["phase"] == "healthy"
        assert hashlib.sha256((node.root / "state" / "cookie").read_bytes()).hexdigest()
    finally:
        node.stop()
