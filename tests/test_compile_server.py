"""The compile VM of a build's extra targets: each request compiles in its own tree with exactly its
own environment (nothing of the previous request's left), a failure is the target's BuildError and
the VM goes on serving. A real elixir VM and real mix projects whose compiler reports what it saw."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xrel.errors import BuildError
from xrel.release.compile_server import CompileServer, dismiss
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


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def wait_gone(pid: int, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


@pytest.fixture
def keeping(tmp_path, monkeypatch) -> Path:
    """Builds as from a terminal (their compile VM kept, 30 s), with a cache and a socket directory
    of the test's own: the project's directory."""
    monkeypatch.setenv("XREL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XREL_KEEP_MIX", "30")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # (its socket's private directory)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    project = tmp_path / "project"
    project.mkdir()
    return project


def kill(pids) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def test_a_kept_vm_serves_the_next_build_started_the_same_way_and_only_that(tmp_path, keeping):
    project, one, two = keeping, tree(tmp_path, "one"), tree(tmp_path, "two")
    pids = []
    try:
        for tree_dir, probe in ((one, "a"), (two, "b")):  # two builds, one VM
            server = CompileServer(project)
            server.start(env())  # (a build starts it with its first target's environment)
            server.compile("probe", tree_dir, env(PROBE=probe), tmp_path / f"{probe}.log", f"compiling {probe}")
            pids.append(server.pid)
            server.close()
            assert alive(server.pid)  # kept for the next build
        assert pids[0] == pids[1]
        assert seen(one)[0] == "a" and seen(two)[0] == "b"
        log = (tmp_path / "b.log").read_text()
        assert "xrel's kept compile VM" in log and "xrel-compiled-" not in log
        # a build started otherwise (MIX_ENV is read once, at the VM's start) gets a VM of its own
        other = CompileServer(project)
        other.start(env(MIX_ENV="dev"))
        other.compile("probe", one, env(MIX_ENV="dev", PROBE="c"), tmp_path / "c.log", "compiling c")
        pids.append(other.pid)
        other.close()
        assert pids[2] != pids[0] and wait_gone(pids[0])  # the old one was told to halt
        assert "xrel's kept compile VM" in (tmp_path / "c.log").read_text()  # and its successor is kept
        assert (one / "_build/dev/lib/probe/probe.txt").read_text().startswith("c|")
    finally:
        kill(pids)


def test_a_kept_vm_halts_when_unused(tmp_path, monkeypatch, keeping):
    monkeypatch.setenv("XREL_KEEP_MIX", "1")
    project, one = keeping, tree(tmp_path, "one")
    server = CompileServer(project)
    try:
        server.compile("probe", one, env(PROBE="a"), tmp_path / "a.log", "compiling a")
        pid = server.pid
    finally:
        server.close()
    assert wait_gone(pid, 15)
    assert not list((tmp_path / f"xrel-{os.getuid()}").glob("*.sock"))  # its socket went with it


def test_a_second_build_at_once_gets_a_vm_of_its_own(tmp_path, keeping):
    project, one, two = keeping, tree(tmp_path, "one"), tree(tmp_path, "two")
    first, second = CompileServer(project), CompileServer(project)
    pids = []
    try:
        first.start(env())  # (both started with their first target's environment: the same)
        first.compile("probe", one, env(PROBE="a"), tmp_path / "a.log", "compiling a")
        pids.append(first.pid)
        second.start(env())
        # the kept VM serves one build at a time: the second is not greeted and boots its own
        second.compile("probe", two, env(PROBE="b"), tmp_path / "b.log", "compiling b")
        pids.append(second.pid)
        assert pids[1] != pids[0] and second.proc is not None and second.proc.stdin is not None
        assert "xrel's compile VM)" in (tmp_path / "b.log").read_text()
        first.compile("probe", one, env(PROBE="c"), tmp_path / "a.log", "compiling c")  # the first goes on
        second.close()
        assert wait_gone(pids[1])  # the second build's own VM ended with it
        first.close()
        assert alive(pids[0]) and seen(one)[0] == "c" and seen(two)[0] == "b"
        third = CompileServer(project)  # and the kept one serves the next build (the second's knock forgotten)
        third.start(env())
        third.compile("probe", two, env(PROBE="d"), tmp_path / "d.log", "compiling d")
        pids.append(third.pid)
        third.close()
        assert pids[2] == pids[0] and seen(two)[0] == "d"
    finally:
        kill(pids)


def test_two_builds_starting_at_once_keep_one_vm(tmp_path, keeping):
    project, one, two = keeping, tree(tmp_path, "one"), tree(tmp_path, "two")
    builds = [CompileServer(project), CompileServer(project)]
    spawned = []
    try:
        for build in builds:  # both find no kept VM and start one to keep: one of them listens
            build.start(env())
            spawned.append(build.proc.pid)
        for build, (tree_dir, probe) in zip(builds, ((one, "a"), (two, "b"))):
            build.compile("probe", tree_dir, env(PROBE=probe), tmp_path / f"{probe}.log", f"compiling {probe}")
        assert seen(one)[0] == "a" and seen(two)[0] == "b"
        kinds = sorted("kept" in (tmp_path / f"{p}.log").read_text() for p in "ab")
        assert kinds == [False, True]  # one build on the kept VM, the other on a VM of its own
        for build in builds:
            build.close()
        assert sum(map(alive, spawned)) == 1  # the VM that lost the socket is gone
    finally:
        kill(spawned)


def test_a_kept_vm_dismissed_halts(tmp_path, keeping):
    project, one = keeping, tree(tmp_path, "one")
    server = CompileServer(project)
    try:
        server.compile("probe", one, env(PROBE="a"), tmp_path / "a.log", "compiling a")
        server.close()
        assert alive(server.pid) and not dismiss(tmp_path / "another")  # (another project's: none)
        stopped = subprocess.run([sys.executable, "-m", "xrel", "stop-kept-vms", str(project), "--json"],
                                 capture_output=True, text=True, check=True)
        assert json.loads(stopped.stdout) == {"mix_vm": False, "compile_vm": True} and wait_gone(server.pid)
        assert not dismiss(project)
    finally:
        kill([server.pid])
