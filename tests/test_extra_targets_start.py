"""Extra targets start while the first target's `mix release` assembles: their trees are synced and
seeded meanwhile, and the VM that compiles their native outputs boots earlier, when the first target's
BEAM code starts compiling (after its NIF); they compile only after the first target's build is
over (zig beside mix's VM would be the build's peak memory), and when the first target fails they
stop. The nif_make fixture on two targets, its release with one more step
(after xrel's own, before mix's assembly) that watches what the build does while it waits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import xrel
from conftest import needs_apt, needs_make, needs_mix
from helpers import copy_fixtures
from xrel.errors import BuildError
from xrel.release.workspace import project_key
from xrel.storage import cache

pytestmark = [needs_mix, needs_make, needs_apt, pytest.mark.slow]

FIRST, EXTRA = "arm-linux-gnueabihf", "aarch64-linux-gnu"
# (Elixir) is this test's compile VM running? One whose environment names this test's report: a
# compile VM kept for some other project on the machine is not this build's
COMPILE_VM_UP = """
    Enum.any?(Path.wildcard("/proc/[0-9]*"), fn proc ->
      with {:ok, cmdline} <- File.read(proc <> "/cmdline"),
           true <- String.contains?(cmdline, "compile_server.exs"),
           {:ok, environ} <- File.read(proc <> "/environ") do
        String.contains?(environ, "PAUSE_REPORT=" <> System.fetch_env!("PAUSE_REPORT") <> <<0>>)
      else
        _ -> false
      end
    end)"""
PAUSE = """
  # the first target's release waits here (up to 20 s) until the extra target's tree holds its
  # seeded BEAM code and xrel's compile VM runs, then 2 s more (time for an extra target that would
  # not wait for the first to compile its NIF); it writes what it saw, then goes on, or fails
  def pause(release) do
    if System.get_env("XREL_TARGET") == System.get_env("PAUSE_TARGET") do
      seen = watch(System.fetch_env!("PAUSE_SEEDED"), 200)
      Process.sleep(2000)
      compiled = Path.wildcard(System.fetch_env!("PAUSE_COMPILED")) != []
      File.write!(System.fetch_env!("PAUSE_REPORT"), "#{seen}; NIF compiled: #{compiled}")
      if System.get_env("PAUSE_THEN") == "fail", do: Mix.raise("the paused step refused")
    end

    release
  end

  defp watch(_seeded, 0), do: "gave up"

  defp watch(seeded, n) do
    if Path.wildcard(seeded) != [] and compile_vm?() do
      "seeded, compile VM up"
    else
      Process.sleep(100)
      watch(seeded, n - 1)
    end
  end

  defp compile_vm? do
    COMPILE_VM_UP
  end
"""


def paused_project(root: Path) -> Path:
    project = copy_fixtures(root, "nif_make") / "nif_make"
    mix = (project / "mix.exs").read_text()
    mix = mix.replace("releases: [nif_make: [include_executables_for: [:unix]]]",
                      "releases: [nif_make: [include_executables_for: [:unix], "
                      "steps: [&NifMake.MixProject.pause/1, :assemble]]]")
    mix = mix.replace("  def application,", PAUSE.replace("COMPILE_VM_UP", COMPILE_VM_UP) + "\n  def application,")
    (project / "mix.exs").write_text(mix)
    return project


@pytest.fixture
def paused(tmp_path, monkeypatch):
    project = paused_project(tmp_path / "src")
    report = tmp_path / "pause-report"
    lib = builds(project) / f"{EXTRA}-*" / "root" / "**" / "lib" / "nif_make"
    monkeypatch.setenv("PAUSE_TARGET", FIRST)
    monkeypatch.setenv("PAUSE_REPORT", str(report))
    monkeypatch.setenv("PAUSE_SEEDED", str(lib / "ebin" / "*.beam"))
    monkeypatch.setenv("PAUSE_COMPILED", str(lib / "priv" / "fixture_nif.so"))
    return project, report


def builds(project: Path) -> Path:
    """The project's build trees' folder (each target's is in it)."""
    return cache.area("builds") / project_key(project, "prod") / "prod"


def compile_vms(report: Path) -> list[int]:
    """The pids of this test's compile VMs running now (their environment names its report)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and b"compile_server.exs" in (entry / "cmdline").read_bytes()
                    and f"PAUSE_REPORT={report}\0".encode() in (entry / "environ").read_bytes()):
                found.append(int(entry.name))
        except OSError:
            pass
    return found


@pytest.mark.timeout(300)  # (a build that waits for a failed first target forever)
def test_extras_are_seeded_and_their_vm_booted_while_the_first_assembles_and_compile_after_it(paused, tmp_path):
    project, report = paused
    result = xrel.build(project, [FIRST, EXTRA], out=tmp_path / "out")
    returned = time.time()
    # (mutations: extras started after the first: "gave up"; not waiting for it: "NIF compiled: true")
    assert report.read_text() == "seeded, compile VM up; NIF compiled: false"
    extra = result.targets[1]
    assert extra.target == EXTRA and any("fixture_nif.so" in f.path for f in extra.native_files)
    # the extra's seconds are its own, after the first target's end (which came after the pause's
    # report), not its time beside the first target's build (mutation: counted from its start)
    assert extra.seconds <= returned - report.stat().st_mtime + 0.01
    assert compile_vms(report) == []


@pytest.mark.timeout(300)  # (a build that waits for a failed first target forever)
def test_when_the_first_target_fails_the_started_extras_stop_and_its_error_is_the_builds(paused, tmp_path,
                                                                                        monkeypatch):
    project, report = paused
    monkeypatch.setenv("PAUSE_THEN", "fail")
    with pytest.raises(BuildError) as failed:
        xrel.build(project, [FIRST, EXTRA], out=tmp_path / "out")
    assert report.read_text() == "seeded, compile VM up; NIF compiled: false"  # the extra target had started
    assert f"building the release for {FIRST} failed" in failed.value.message
    assert "the paused step refused" in failed.value.message
    extra_log = next(builds(project).glob(f"{EXTRA}-*/build.log")).read_text()
    assert "$ mix compile" not in extra_log  # it never compiled
    assert not (tmp_path / "out" / FIRST / "nif_make").exists() and not (tmp_path / "out" / EXTRA / "nif_make").exists()
    assert compile_vms(report) == []


WAITS_FOR_THE_VM = """
defmodule NifMake.WaitsForTheCompileVM do
  @moduledoc false
  # compiled with the first target's BEAM code: waits there (up to 20 s) for xrel's compile VM
  if System.get_env("XREL_TARGET") == System.get_env("PAUSE_TARGET") do
    up? = fn -> COMPILE_VM_UP end

    up = Enum.find(1..200, fn _ -> up?.() or (Process.sleep(100) && false) end)
    File.write!(System.fetch_env!("PAUSE_REPORT"), if(up, do: "compile VM up", else: "gave up"))
  end
end
"""


@pytest.mark.timeout(300)
def test_the_compile_vm_boots_while_the_first_targets_beam_code_compiles_after_its_nif(tmp_path, monkeypatch):
    """xrel's mix wrapper marks the start of the first target's BEAM compile (its deps and NIF are
    done: zig's memory is freed), and the compile VM boots then, not when the release assembles."""
    project = copy_fixtures(tmp_path / "src", "nif_make") / "nif_make"
    waits = WAITS_FOR_THE_VM.replace("COMPILE_VM_UP", COMPILE_VM_UP)
    (project / "lib" / "waits_for_the_compile_vm.ex").write_text(waits)
    report = tmp_path / "report"
    monkeypatch.setenv("PAUSE_TARGET", FIRST)
    monkeypatch.setenv("PAUSE_REPORT", str(report))
    xrel.build(project, [FIRST, EXTRA], out=tmp_path / "out")
    # (mutations: no mark, or the VM booted at the release's assembly: "gave up")
    assert report.read_text() == "compile VM up"
    state = next(builds(project).glob(f"{FIRST}-*/"))
    lib = next((state / "root").glob("**/_build/prod/lib/nif_make"))
    mark = (state / "beam-compile-started").stat().st_mtime
    # (mutation: the mark written as the project loads, before its NIF: fails)
    assert (lib / "priv" / "fixture_nif.so").stat().st_mtime <= mark <= report.stat().st_mtime
    assert compile_vms(report) == []
