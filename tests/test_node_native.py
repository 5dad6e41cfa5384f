"""The node agent on this machine's own CPU (x86_64, no emulation, so quick): an update asked for on
demand (the trigger file, and check_now over rpc) instead of by the poll timer, and a version that
boots but fails its health check rolled back by the agent's own report; a version with a broken signature
refused and logged with nothing changed."""

from __future__ import annotations

import subprocess
import time

import pytest

from node_harness import HEALTH, Node, install_root, project_with_feed

TARGET = "x86_64-linux-gnu"
pytestmark = [pytest.mark.slow]


def test_on_demand_checks_and_a_failed_health_check(tmp_path):
    with project_with_feed(tmp_path, TARGET, interval="1h", probation=15, extra_toml=HEALTH) as (project, publish, ca):
        publish("1.0.0")
        node: Node = install_root(project, tmp_path, ca, TARGET)
        node.start()
        try:
            node.wait_for(r"start version=1\.0\.0")
            time.sleep(3)  # the agent is up
            publish("2.0.0")
            mark = len(node.log)
            subprocess.run([str(node.root / "bin" / "xrel-node"), "check-now"], env=node.env, check=True)
            node.wait_for(r"healthy version=2\.0\.0", after=mark)

            publish("2.1.0")  # its signature broken on the server: refused, logged, nothing changes
            signature = tmp_path / "www" / "2.1.0" / "xrel-manifest.json.minisig"
            lines = signature.read_text().splitlines()
            lines[1] = lines[1][:-4] + ("AAAA" if not lines[1].endswith("AAAA") else "BBBB")
            signature.write_text("\n".join(lines) + "\n")
            before = (node.state(), sorted(p.name for p in (node.root / "versions").iterdir()))
            mark = len(node.log)
            subprocess.run([str(node.root / "bin" / "xrel-node"), "check-now"], env=node.env, check=True)
            node.wait_for(r"refused reason=.*2\.1\.0/xrel-manifest\.json: signature check failed", after=mark)
            assert (node.state(), sorted(p.name for p in (node.root / "versions").iterdir())) == before
            assert not list((node.root / "state" / "downloads").iterdir())

            publish("5.0.0")  # boots, but its health check says no
            mark = len(node.log)
            rpc = subprocess.run([str(node.root / "bin" / "xrel-node"), "rpc",
                                  "IO.inspect(:xrel_node.check_now())"], env=node.env, capture_output=True,
                                 text=True, timeout=120)
            assert '{:switching, ~c"5.0.0"}' in rpc.stdout or "{:switching, '5.0.0'}" in rpc.stdout, rpc
            node.wait_for(r"unhealthy version=5\.0\.0", after=mark)
            node.wait_for(r"rollback from=5\.0\.0 to=2\.0\.0 reason=\"5\.0\.0 failed its health check", after=mark)
            node.wait_for(r"start version=2\.0\.0", after=mark)
            assert node.state()["rejected"] == "5.0.0"
        finally:
            node.stop()
