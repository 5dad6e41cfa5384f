"""The compile VM of a build's extra targets: each request compiles in its own tree with exactly its
own environment (nothing of the previous request's left), a failure is the target's BuildError and
the VM goes on serving. A real elixir VM and real mix projects whose compiler reports what it saw."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from xrel.errors import BuildError
from xrel.release.compile_server import CompileServer
from xrel.release.mix import helpers_ebin

pytestmark = pytest.mark.skipif(not shutil.which("elixir"), reason="needs Elixir (scripts/setup.sh installs it)")

MIX_EXS = """
defmodule Probe.MixProject do
  use Mix.Project
  def project do
    [app: :probe, version: "0.1.0", compilers: Mix.compilers() ++ [:probe], deps: [{:probe_dep, path: "probe_dep"}]]
  end
end

defmodule Mix.Tasks.Compile.Probe do
  use Mix.Task.Compiler

  def run(_args) do
    if System.get_env("PROBE") == "fail", do: Mix.raise("the probe refused to compile")
    seen = Enum.join([System.get_env("PROBE"), System.get_env("ONLY_FIRST"), Mix.env(), File.cwd!()], "|")
    File.mkdir_p!(Mix.Project.app_path())
    File.write!(Path.join(Mix.Project.app_path(), "probe.txt"), seen)
    :ok
  end
end
"""


DEP_MIX_EXS = """
defmodule ProbeDep.MixProject do
  use Mix.Project
  def project, do: [app: :probe_dep, version: "0.1.0", compilers: Mix.compilers() ++ [:probe_dep]]
end

defmodule Mix.Tasks.Compile.ProbeDep do
  use Mix.Task.Compiler

  def run(_args) do
    File.mkdir_p!(Mix.Project.app_path())
    File.write!(Path.join(Mix.Project.app_path(), "probe.txt"), System.get_env("PROBE"))
    :ok
  end
end
"""


def tree(root: Path, name: str) -> Path:
    """A project with a path dependency, both with a compiler that writes what it saw."""
    path = root / name / "probe"
    (path / "probe_dep").mkdir(parents=True)
    (path / "mix.exs").write_text(MIX_EXS)
    (path / "probe_dep" / "mix.exs").write_text(DEP_MIX_EXS)
    return path


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("MIX_") and k not in ("PROBE", "ONLY_FIRST", "XREL_MIX_EBIN")}
    return {**base, "MIX_ENV": "prod", **extra}


@pytest.fixture(params=["precompiled", "compiled at boot"])
def helpers(request) -> dict[str, str]:
    """The VM's module from xrel's helpers ebin (as a build runs it), or compiled by its script."""
    if request.param == "compiled at boot":
        return {}
    ebin = helpers_ebin()
    assert ebin is not None and (ebin / "Elixir.Xrel.CompileServer.beam").is_file()
    return {"XREL_MIX_EBIN": str(ebin)}


def seen(path: Path) -> list[str]:
    return (path / "_build" / "prod" / "lib" / "probe" / "probe.txt").read_text().split("|")


def test_each_request_has_its_own_tree_and_exactly_its_own_environment(tmp_path, helpers):
    one, two = tree(tmp_path, "one"), tree(tmp_path, "two")
    server = CompileServer()
    try:
        server.compile("probe", one, env(PROBE="arm", ONLY_FIRST="yes", **helpers), tmp_path / "one.log",
                       "compiling for one")
        server.compile("probe", two, env(PROBE="arm64", **helpers), tmp_path / "two.log", "compiling for two")
        # each tree's dependency compiled in that tree (Mix caches a project's deps by its module's name)
        assert [(t / "_build/prod/lib/probe_dep/probe.txt").read_text() for t in (one, two)] == ["arm", "arm64"]
        pid = server.proc.pid
        with pytest.raises(BuildError) as failed:
            server.compile("probe", two, env(PROBE="fail"), tmp_path / "two.log", "compiling for two")
        assert "compiling for two failed (mix compile failed)" in failed.value.message
        assert "the probe refused to compile" in failed.value.message  # the log's tail
        server.compile("probe", one, env(PROBE="again"), tmp_path / "one.log", "compiling for one")
        assert server.proc.pid == pid  # one VM served them all
    finally:
        server.close()
    assert server.proc is None
    assert seen(one) == ["again", "", "prod", str(one)]
    assert seen(two) == ["arm64", "", "prod", str(two)]  # ONLY_FIRST was the first request's alone
    log = (tmp_path / "one.log").read_text()
    assert log.count("$ mix compile") == 2 and "xrel-compiled-" not in log  # the answers are not logged


def test_a_vm_that_died_is_a_build_error_not_a_hang(tmp_path):
    one = tree(tmp_path, "one")
    server = CompileServer()
    try:
        server.compile("probe", one, env(PROBE="x"), tmp_path / "a.log", "compiling")
        server.proc.kill()
        server.proc.wait()
        with pytest.raises(BuildError) as failed:
            server.compile("probe", one, env(PROBE="y"), tmp_path / "a.log", "compiling for one")
    finally:
        server.close()
    assert "compiling for one failed (the compile VM exited)" in failed.value.message
