"""Issue 15's proof on a node, under qemu-user on armhf: the agent applies `xrel dist --upgrade-from`
packages in place. A counter at 5 keeps its value (migrated to a map with history), its OS pid and
runtime.exs values across 1.0.0 -> 2.0.0 (a path dep changed without a version bump, a module added and
one removed, a supervisor's child spec changed); down to 1.0.0 and up again in place; a 1.1.0 whose
code_change raises is refused by the pre-flight with the node on 1.0.0 and its state; a 4.0.0 adding a
NIF is gated to a restart and the node ends on it through the cold path."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import FIXTURES, runnable
from node_harness import Node, install_root, project_with_feed

TARGET = os.environ.get("XREL_TEST_HOT_TARGET", "arm-linux-gnueabihf")  # another to debug on this CPU
pytestmark = [pytest.mark.slow, runnable(TARGET)]
RUNTIME_EXS = 'import Config\nconfig :hot_app, greeting: System.get_env("HOT_GREETING", "unset")\n'
PROBE = ('IO.inspect({HotApp.Counter.value(), System.pid(), Application.get_env(:hot_app, :greeting), '
         'Code.ensure_loaded?(HotApp.Added), Code.ensure_loaded?(HotApp.Removed)})')


def lay_over(src: Path, overlay: Path) -> None:
    """tests/fixtures/hot_app_v2's files over the projects' copies, its REMOVE list deleted."""
    for path in overlay.rglob("*"):
        if path.is_file() and path.name not in ("README", "REMOVE"):
            target = src / path.relative_to(overlay)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    for line in (overlay / "REMOVE").read_text().split():
        (src / line).unlink(missing_ok=True)


def rpc(node: Node, expression: str, wait: float = 120) -> str:
    """The expression's output on the running node (retried while the node comes up)."""
    deadline = time.monotonic() + wait
    while True:
        out = subprocess.run([str(node.root / "bin" / "xrel-node"), "rpc", expression], env=node.env,
                             capture_output=True, text=True, timeout=300)
        if out.returncode == 0 or time.monotonic() > deadline:  # not up yet: nodedown, or apps still starting
            break
        time.sleep(1)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_hot_upgrades_keep_state_and_the_gate_sends_the_rest_cold(tmp_path):
    fixtures = ("hot_app", "hot_dep", "nif_make")
    with project_with_feed(tmp_path, TARGET, fixtures=fixtures, probation=120,
                           extra_toml='[publish]\nto = "dir:{www}"\n') as (project, publish, ca):
        (project / "config").mkdir()
        (project / "config" / "runtime.exs").write_text(RUNTIME_EXS)
        publish("1.0.0")
        node = install_root(project, tmp_path, ca, TARGET, release="hot_app")
        node.env["HOT_GREETING"] = "from the node"
        node.start()
        try:
            node.wait_for(r"start version=1\.0\.0")
            rpc(node, "for _ <- 1..5, do: HotApp.Counter.bump()")
            value, pid, greeting, *_ = eval_tuple(rpc(node, PROBE))
            assert (value, greeting) == (5, "from the node")

            counter = project / "lib" / "hot_app" / "counter.ex"  # 1.1.0: a code_change that raises
            original = counter.read_text()
            raising = '  @impl true\n  def code_change(_vsn, _n, _extra), do: raise("cannot migrate")\n\n'
            counter.write_text(original.replace("  @impl true\n  def init", raising + "  @impl true\n  def init"))
            mark = len(node.log)
            publish("1.1.0")
            node.wait_for(r"refused version=1\.1\.0 reason=.*code_change_would_fail", after=mark)
            assert eval_tuple(rpc(node, PROBE))[:2] == (5, pid)
            assert node.state()["rejected"] == "1.1.0" and node.state()["current"] == "1.0.0"

            counter.write_text(original)
            lay_over(project.parent, FIXTURES / "hot_app_v2")
            mark = len(node.log)
            publish("2.0.0", "--upgrade-from", "1.0.0")  # the package from what the node runs
            node.wait_for(r"hot_upgrade from=1\.0\.0 to=2\.0\.0", after=mark)
            node.wait_for(r"healthy version=2\.0\.0", after=mark)
            assert eval_tuple(rpc(node, PROBE)) == (5, pid, "from the node", True, False)
            assert rpc(node, "IO.inspect(HotApp.Counter.history())") == "[:upgraded]"
            # the path dep's new code (same version), and the supervisor's new child spec
            assert rpc(node, "IO.puts(HotDep.greeting())") == "hello from 2"
            childspec = rpc(node, "IO.inspect(:supervisor.get_childspec(HotApp.Sup, HotApp.Counter))")
            assert "shutdown: 15000" in childspec, childspec
            assert node.state()["current"] == "2.0.0" and node.state()["dir"] == "1.0.0"

            mark = len(node.log)
            assert "upgraded" in rpc(node, 'IO.inspect(:xrel_node.pin("1.0.0"))')  # down in place
            node.wait_for(r"healthy version=1\.0\.0", after=mark)
            assert eval_tuple(rpc(node, PROBE))[:3] == (5, pid, "from the node")
            assert "upgraded" in rpc(node, "IO.inspect(:xrel_node.pin(:none))")  # up again, in place
            node.wait_for(r"healthy version=2\.0\.0", after=mark)
            assert eval_tuple(rpc(node, PROBE))[:2] == (5, pid)

            node.stop()  # a cold restart boots the version made permanent in place
            mark = len(node.log)
            node.start()
            node.wait_for(r"start version=2\.0\.0 dir=1\.0\.0", after=mark)
            assert rpc(node, "IO.puts(Application.spec(:hot_app, :vsn))") == "2.0.0"

            mix = project / "mix.exs"  # 4.0.0 adds a NIF: the gate sends it the cold way
            mix.write_text(mix.read_text().replace('{:hot_dep, path: "../hot_dep"}',
                                                   '{:hot_dep, path: "../hot_dep"}, {:nif_make, path: "../nif_make"}'))
            mark = len(node.log)
            publish("4.0.0")
            node.wait_for(r"switch from=2\.0\.0 to=4\.0\.0", after=mark)  # no package: the gate said why
            node.wait_for(r"healthy version=4\.0\.0", after=mark)
            assert node.state()["dir"] == "4.0.0"
        finally:
            node.stop()


def eval_tuple(text: str) -> tuple:
    """`{5, "123", "from the node", true, false}` as printed by IO.inspect, as a Python tuple."""
    items = [item.strip() for item in text.strip("{}").split(",")]
    convert = {"true": True, "false": False}
    return tuple(convert.get(i, int(i) if i.isdigit() else i.strip('"')) for i in items)
