"""Issue 14's proof end to end, under qemu-user on armhf: a release with the node agent, installed with
bin/xrel-node, supervised by `bin/xrel-node run`, fed by `xrel publish dir:` output over HTTPS with a test
CA. v1 → v2 switches and reports healthy (v1 kept, cookie kept); a v3 that cannot boot is rolled back to v2
by itself and not tried again; a node killed in the middle of a switch ends on a healthy version."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from helpers import XREL, copy_fixtures, runnable
from tls_ca import https_server, make_ca

TARGET = "arm-linux-gnueabihf"
pytestmark = [pytest.mark.slow, runnable(TARGET)]


def xrel(project: Path, *args: str, env: dict) -> str:
    out = subprocess.run([*XREL, *args], cwd=project, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"xrel {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


class Node:
    """A node root under test and its `bin/xrel-node run` supervisor."""

    def __init__(self, root: Path, env: dict):
        self.root, self.env, self.proc = root, env, None

    @property
    def log(self) -> str:
        return (self.root / "state" / "node.log").read_text()

    def state(self) -> dict[str, str]:
        lines = (self.root / "state" / "node.state").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def start(self) -> None:
        self.proc = subprocess.Popen([str(self.root / "bin" / "xrel-node"), "run"], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def wait_for(self, pattern: str, timeout: float = 240, after: int = 0) -> float:
        """Seconds until node.log (from offset `after`) matches `pattern`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if re.search(pattern, self.log[after:]):
                return time.monotonic() - started
            assert self.proc is None or self.proc.poll() is None, f"the supervisor exited:\n{self.log}"
            time.sleep(0.5)
        raise AssertionError(f"no {pattern!r} in node.log within {timeout} s:\n{self.log}")


def set_version(project: Path, version: str) -> None:
    mix = project / "mix.exs"
    mix.write_text(re.sub(r'version: "[^"]+"', f'version: "{version}"', mix.read_text()))


def tarball(project: Path, version: str) -> Path:
    return project / "dist" / version / f"node_app-{version}-otp25-{TARGET}.tar.gz"


@pytest.fixture
def published(tmp_path):
    """A project with [node], keys, an HTTPS feed serving its dir: publishing, and a publish(version) step."""
    project = copy_fixtures(tmp_path / "src", "node_app") / "node_app"
    www, tls = tmp_path / "www", tmp_path / "tls"
    www.mkdir()
    ca, cert, key = make_ca(tls)
    env = {**os.environ, "XREL_SIGNING_KEY": str(project / "xrel.key")}
    xrel(project, "keygen", "--unencrypted", "-q", env=env)
    with https_server(www, cert, key) as feed:
        (project / "xrel.toml").write_text(
            f'targets = ["{TARGET}"]\n[signing]\npublic_key = "xrel.pub"\n'
            f'[node]\nfeed = "{feed}"\ninterval = 2\nprobation = 90\nmax_attempts = 2\nrestart_sec = 1\n'
            'health_check = "NodeApp.Health.check"\n')

        def publish(version: str) -> None:
            set_version(project, version)
            xrel(project, "dist", "-q", env=env)
            xrel(project, "publish", f"dir:{www}", "-q", env=env)

        yield project, publish, ca


def install(project: Path, tmp_path: Path, ca: Path) -> Node:
    """v1 unpacked and installed as a node root; the unit file checked; the supervisor's environment."""
    from xrel.emulate.runner import plan

    unpacked = tmp_path / "unpacked"
    with tarfile.open(tarball(project, "1.0.0")) as tar:
        tar.extractall(unpacked, filter="tar")
    root, units = tmp_path / "node", tmp_path / "units"
    units.mkdir()
    out = subprocess.run([str(unpacked / "bin" / "xrel-node"), "install", "--root", str(root), "--unit-dir",
                          str(units)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    unit = units / "node_app.service"
    assert "StartLimitIntervalSec=0" in unit.read_text() and f"ExecStart={root}/bin/xrel-node exec" in unit.read_text()
    if shutil.which("systemd-analyze"):  # setup.sh installs it; test_node_supervisor names a missing one
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0 and unit.name not in verify.stderr, verify.stderr
    env = {**plan(unpacked).env, "XREL_NODE_CACERTFILE": str(ca)}  # qemu-user's loader prefix, the test CA
    return Node(root, env)


def test_switch_rollback_and_an_interrupted_switch(published, tmp_path):
    project, publish, ca = published
    publish("1.0.0")
    node = install(project, tmp_path, ca)
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
    with tarfile.open(tarball(project, "4.0.0")) as tar:  # what the agent's unpack leaves, complete
        tar.extractall(node.root / "versions" / "4.0.0", filter="tar")
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
