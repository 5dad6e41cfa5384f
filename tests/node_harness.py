"""The node agent's test harness: a node_app project with [node] and keys, fed over HTTPS by its own
`xrel publish dir:` output, and a node root run by `bin/xrel-node run` (shared by the node tests)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from helpers import XREL, copy_fixtures, untar
from https_server import https_server
from node_feed import make_pki


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
        self.stop_epmd()

    def stop_epmd(self) -> None:
        """The node's releases start their own epmd, which daemonizes (its own session, outliving the
        supervisor, as on a real host): a test stops the one started from this root."""
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue
            if any(a.startswith(str(self.root).encode()) and a.endswith(b"/epmd") for a in args):
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(cmdline.parent.name), signal.SIGTERM)

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


def tarball(project: Path, version: str, target: str, release: str = "node_app") -> Path:
    return project / "dist" / version / f"{release}-{version}-otp25-{target}.tar.gz"


HEALTH = 'health_check = "NodeApp.Health.check"\n'  # node_app's


@contextmanager
def project_with_feed(tmp_path: Path, target: str, interval: str = "2", probation: int = 90,
                      fixtures: tuple[str, ...] = ("node_app",), extra_toml: str = ""):
    """A project with [node], keys, an HTTPS feed serving its dir: publishing, and a publish(version) step."""
    project = copy_fixtures(tmp_path / "src", *fixtures) / fixtures[0]
    www, tls = tmp_path / "www", tmp_path / "tls"
    www.mkdir()
    pki = make_pki(tls)
    ca, cert, key = pki.ca, pki.cert, pki.key
    env = {**os.environ, "XREL_SIGNING_KEY": str(project / "xrel.key")}
    xrel(project, "keygen", "--unencrypted", "-q", env=env)
    with https_server(www, cert, key) as feed:
        (project / "xrel.toml").write_text(
            f'targets = ["{target}"]\n[signing]\npublic_key = "xrel.pub"\n'
            f'[node]\nfeed = "{feed}"\ninterval = "{interval}"\nprobation = {probation}\nmax_attempts = 2\n'
            'restart_sec = 1\n' + extra_toml.format(www=www))

        def publish(version: str, *dist_args: str) -> None:
            set_version(project, version)
            xrel(project, "dist", "-q", *dist_args, env=env)
            xrel(project, "publish", f"dir:{www}", "-q", env=env)

        yield project, publish, ca


def install_root(project: Path, tmp_path: Path, ca: Path, target: str, release: str = "node_app") -> Node:
    """v1 unpacked and installed as a node root; the unit file checked; the supervisor's environment."""
    from xrel.emulate.runner import plan

    unpacked = tmp_path / "unpacked"
    untar(tarball(project, "1.0.0", target, release), unpacked)
    root, units = tmp_path / "node", tmp_path / "units"
    units.mkdir()
    out = subprocess.run([str(unpacked / "bin" / "xrel-node"), "install", "--root", str(root), "--unit-dir",
                          str(units)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    unit = units / f"{release}.service"
    assert "StartLimitIntervalSec=0" in unit.read_text() and f"ExecStart={root}/bin/xrel-node exec" in unit.read_text()
    if shutil.which("systemd-analyze"):  # setup.sh installs it; test_node_supervisor names a missing one
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0 and unit.name not in verify.stderr, verify.stderr
    env = {**plan(unpacked).env, "XREL_NODE_CACERTFILE": str(ca)}  # qemu-user's loader prefix, the test CA
    env.pop("RELEASE_COOKIE", None)  # the node's own cookie (state/cookie) is what xrel-node exports
    env["RELEASE_NODE"] = f"{release}_{os.getpid()}_{root.parent.name}"[:200]  # another run's node never clashes
    return Node(root, env)
