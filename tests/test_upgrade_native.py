"""Hot upgrade proof on this machine's CPU (x86_64, no emulation): hot_app 1.0.0 published to a dir:, 2.0.0's
dist makes the package from it (the default, verified with the project's key), and the package applied to a
running 1.0.0 by release_handler keeps the counter's value (migrated by code_change) and the OS pid, brings
the new function, the added module, the changed supervisor spec and the path dep changed without a version
bump; downgrade and upgrade again keep the value. A 3.0.0 with another vm.args gets no package, and says why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from conftest import FIXTURES, needs_mix
from helpers import XREL, untar

TARGET = "x86_64-linux-gnu"
pytestmark = [pytest.mark.slow, needs_mix]


def xrel(project: Path, *args: str, env: dict) -> str:
    out = subprocess.run([*XREL, *args], cwd=project, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"xrel {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def to_v2(src: Path) -> None:
    """Lay tests/fixtures/hot_app_v2 over the copies: 2.0.0."""
    overlay = FIXTURES / "hot_app_v2"
    for name in ("hot_app", "hot_dep"):
        # new mtimes: mix recompiles a path dependency by its sources' mtimes
        shutil.copytree(overlay / name, src / name, dirs_exist_ok=True, copy_function=shutil.copy)
    for rel in (overlay / "REMOVE").read_text().split():
        (src / rel).unlink()
    set_version(src / "hot_app", "2.0.0")


def set_version(project: Path, version: str) -> None:
    mix = project / "mix.exs"
    mix.write_text(mix.read_text().replace('version: "1.0.0"', f'version: "{version}"')
                   .replace('version: "2.0.0"', f'version: "{version}"'))


class Node:
    """A release root booted with `bin/hot_app daemon`, spoken to with `bin/hot_app rpc`."""

    def __init__(self, root: Path, name: str):
        self.root = root
        self.env = {**os.environ, "RELEASE_COOKIE": "xrel-upgrade-test", "RELEASE_DISTRIBUTION": "name",
                    "RELEASE_NODE": f"{name}@127.0.0.1"}

    def run(self, *args: str) -> str:
        out = subprocess.run([str(self.root / "bin" / "hot_app"), *args], env=self.env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, f"{args}: {out.stdout}\n{out.stderr}"
        return out.stdout.strip()

    def start(self) -> None:
        """`daemon`, then wait until the node answers."""
        self.run("daemon")
        deadline = time.monotonic() + 60
        while subprocess.run([str(self.root / "bin" / "hot_app"), "rpc", "1"], env=self.env,
                             capture_output=True, timeout=60).returncode != 0:
            assert time.monotonic() < deadline, "the node did not answer within 60 s"
            time.sleep(0.5)

    def rpc(self, expr: str) -> str:
        return self.run("rpc", f"IO.puts(inspect(({expr}), charlists: :as_lists))")


def create_releases(root: Path, version: str) -> None:
    """RELEASES for the unpacked release, before it boots (release_handler reads it once, at start)."""
    code = (f'R = "{root}", ok = release_handler:create_RELEASES(R, R ++ "/releases", '
            f'R ++ "/releases/{version}/hot_app.rel", []), halt().')
    subprocess.run(["erl", "-noshell", "-eval", code], check=True, timeout=60)


def test_a_counter_at_5_upgraded_in_place(tmp_path):
    shutil.copytree(FIXTURES / "hot_app", tmp_path / "src" / "hot_app")
    shutil.copytree(FIXTURES / "hot_dep", tmp_path / "src" / "hot_dep")
    project, www = tmp_path / "src" / "hot_app", tmp_path / "www"
    env = {**os.environ, "XREL_SIGNING_KEY": str(project / "xrel.key")}
    xrel(project, "keygen", "--unencrypted", "-q", env=env)
    (project / "xrel.toml").write_text(f'targets = ["{TARGET}"]\n[signing]\npublic_key = "xrel.pub"\n'
                                       f'[publish]\nto = "dir:{www}"\n')
    xrel(project, "dist", "-q", env=env)
    xrel(project, "publish", "-q", env=env)
    to_v2(tmp_path / "src")
    xrel(project, "dist", env=env)  # from latest/ of the dir: destination, its signature checked
    manifest = json.loads((project / "dist/2.0.0/xrel-manifest.json").read_text())
    [upgrade] = manifest["targets"][0]["upgrades"]
    package = project / "dist/2.0.0" / upgrade["file"]
    assert upgrade["from_version"] == "1.0.0"
    assert package.name == f"hot_app-2.0.0-upgrade-from-1.0.0-otp25-{TARGET}.tar.gz"
    assert upgrade["file"] in (project / "dist/2.0.0/SHA256SUMS").read_text()
    check_package(package)

    root = tmp_path / "node"
    untar(project / f"dist/1.0.0/hot_app-1.0.0-otp25-{TARGET}.tar.gz", root)
    create_releases(root, "1.0.0")
    node = Node(root, f"hot{os.getpid()}")
    node.start()
    try:
        apply_and_check(node, package)
    finally:
        subprocess.run([str(root / "bin" / "hot_app"), "stop"], env=node.env, capture_output=True, timeout=60)

    (project / "rel").mkdir()
    (project / "rel" / "vm.args.eex").write_text("+P 300000\n")
    set_version(project, "3.0.0")
    out = xrel(project, "dist", "--upgrade-from", "dist/2.0.0", env=env)
    assert f"{TARGET}: no hot upgrade from 2.0.0 (nodes restart): vm.args changed" in out
    assert json.loads((project / "dist/3.0.0/xrel-manifest.json").read_text())["targets"][0]["upgrades"] == []


def check_package(package: Path) -> None:
    with tarfile.open(package) as tar:
        names = tar.getnames()
        info = json.load(tar.extractfile("releases/2.0.0/xrel-upgrade.json"))
    assert {n.split("/")[0] for n in names} == {"lib", "releases"}
    libs = {n.split("/")[1] for n in names if n.startswith("lib/")}
    assert libs == {"hot_app-2.0.0", f"hot_dep-{info['renamed_apps']['hot_dep']}"}
    assert {"releases/hot_app-2.0.0.rel", "releases/2.0.0/relup", "releases/2.0.0/start.boot",
            "releases/2.0.0/sys.config", "releases/2.0.0/vm.args"} <= set(names)
    assert "releases/COOKIE" not in names
    assert (info["from_version"], info["to_version"], info["target"], info["gate"]) == ("1.0.0", "2.0.0", TARGET, "ok")
    assert info["changed_apps"] == ["hot_app", "hot_dep"]
    assert info["modules_with_code_change"] == [["hot_app", "Elixir.HotApp.Counter"]]


def apply_and_check(node: Node, package: Path) -> None:
    for _ in range(5):
        node.rpc("HotApp.Counter.bump()")
    pid = node.rpc("System.pid()")
    assert node.rpc("{HotApp.Counter.value(), HotDep.greeting()}") == '{5, "hello from 1"}'
    shutil.copyfile(package, node.root / "releases" / "hot_app-2.0.0.tar.gz")
    assert node.rpc(':release_handler.unpack_release(~c"hot_app-2.0.0")') == "{:ok, [50, 46, 48, 46, 48]}"
    assert node.rpc(':release_handler.install_release(~c"2.0.0")').startswith("{:ok, [49, 46, 48, 46, 48], ")
    assert node.rpc("System.pid()") == pid
    assert node.rpc("{HotApp.Counter.value(), HotApp.Counter.history(), HotApp.Added.hello()}") == \
        '{5, [:upgraded], {:added, "hello from 2"}}'
    assert node.rpc("{:code.is_loaded(HotApp.Removed), :code.which(HotApp.Removed)}") == "{false, :non_existing}"
    assert node.rpc(":supervisor.get_childspec(HotApp.Sup, HotApp.Counter) |> elem(1) |> Map.get(:shutdown)") == "15000"
    node.rpc("HotApp.Counter.bump()")

    assert node.rpc(':release_handler.install_release(~c"1.0.0")').startswith("{:ok, ")  # downgrade
    assert node.rpc("{HotApp.Counter.value(), HotDep.greeting(), HotApp.Removed.here?(), System.pid()}") == \
        f'{{6, "hello from 1", true, {pid}}}'
    assert node.rpc(':release_handler.install_release(~c"2.0.0")').startswith("{:ok, ")  # and up again
    assert node.rpc("{HotApp.Counter.value(), HotApp.Counter.history(), HotDep.greeting(), System.pid()}") == \
        f'{{6, [:upgraded], "hello from 2", {pid}}}'
