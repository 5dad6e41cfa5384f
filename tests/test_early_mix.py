"""The VM booted early for a build's first `mix release` (early_mix.py): it runs the next run only
when that run has exactly the remembered directory, environment and log; anything else boots mix as
usual and the early VM stops. Real elixir VMs and a real mix project whose task reports what it saw."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import xrel
from helpers import copy_fixtures
from xrel.errors import BuildError
from xrel.release import early_mix
from xrel.release.mix import run_mix
from xrel.release.workspace import project_key
from xrel.storage import cache

pytestmark = pytest.mark.skipif(not shutil.which("mix"), reason="needs Elixir (scripts/setup.sh installs it)")

MIX_EXS = """
defmodule Probe.MixProject do
  use Mix.Project
  def project, do: [app: :probe, version: "0.1.0"]
end

defmodule Mix.Tasks.Probe do
  use Mix.Task

  def run(args) do
    if System.get_env("PROBE") == "fail", do: Mix.raise("the probe refused")
    if args == ["sleep"], do: Process.sleep(120_000)
    seen = %{pid: System.pid(), probe: System.get_env("PROBE"), cwd: File.cwd!(), args: args}
    File.write!("seen.json", ~s({"pid": "#{seen.pid}", "probe": "#{seen.probe}", "cwd": "#{seen.cwd}", ) <>
                             ~s("args": "#{Enum.join(args, " ")}"}))
  end
end
"""
TARGET = "arm-linux-gnueabihf"
EARLY_LINE = "(xrel: mix runs in the VM it booted early, os pid "


@pytest.fixture
def probe(tmp_path, isolated_cache) -> Path:
    project = tmp_path / "probe"
    project.mkdir()
    (project / "mix.exs").write_text(MIX_EXS)
    yield project
    early_mix.stop(project)


def run(project: Path, probe_value: str, *args: str) -> dict:
    """`mix probe <args>` as a build's first release is run: the early VM may take it."""
    log = project.parent / "state" / "build.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("")
    env = {**os.environ, "PROBE": probe_value, "MIX_ENV": "dev"}
    run_mix(["probe", *args], project, env, log, "probing", early_for=project)
    seen = json.loads((project / "seen.json").read_text())
    text = log.read_text()
    seen["early_pid"] = text.split(EARLY_LINE)[1].split(")")[0] if EARLY_LINE in text else None
    return seen


def waiting_vm(project: Path):
    """The early VM started for `project` and not yet used."""
    return early_mix._started[str(project.resolve())].proc


def test_the_next_run_with_the_same_setup_takes_the_vm_booted_early(probe):
    early_mix.start(probe)  # nothing remembered yet: nothing booted
    first = run(probe, "a", "x")
    assert first["early_pid"] is None and first["probe"] == "a"
    early_mix.stop(probe)

    early_mix.start(probe)
    second = run(probe, "a", "y", "z")
    assert second["early_pid"] == second["pid"], second  # the task ran in the early VM
    assert (second["probe"], second["cwd"], second["args"]) == ("a", str(probe), "y z")


def test_a_changed_environment_boots_mix_as_usual_and_the_early_vm_stops(probe):
    run(probe, "a")
    early_mix.start(probe)
    waiting = waiting_vm(probe)
    seen = run(probe, "b")  # PROBE changed: not the environment the early VM was booted with
    assert seen["early_pid"] is None and seen["probe"] == "b"
    early_mix.stop(probe)
    assert waiting.wait(timeout=30) == 0  # end of its input: it halts
    early_mix.start(probe)  # the changed setup is the one remembered now
    assert run(probe, "b")["early_pid"] is not None


def test_an_unused_early_vm_stops(probe):
    run(probe, "a")
    early_mix.start(probe)
    waiting = waiting_vm(probe)
    early_mix.stop(probe)
    assert waiting.wait(timeout=30) == 0


def test_an_early_vm_that_died_meanwhile_leaves_the_run_to_a_new_vm(probe):
    run(probe, "a")
    early_mix.start(probe)
    waiting = waiting_vm(probe)
    waiting.kill()
    waiting.wait(timeout=30)
    seen = run(probe, "a")
    assert seen["early_pid"] is None and seen["probe"] == "a"


def test_an_interrupted_run_kills_the_early_vm(probe, monkeypatch):
    """Ctrl-C or SIGTERM while the early VM runs mix (here: its wait interrupted once) kills it, as
    subprocess.run kills a mix it started, so no release is written on after xrel has gone."""
    run(probe, "a")
    early_mix.start(probe)
    vm = waiting_vm(probe)
    real_wait, interrupted = subprocess.Popen.wait, []

    def wait_interrupted_once(self, timeout=None):
        if self is vm and not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt
        return real_wait(self, timeout)

    monkeypatch.setattr(subprocess.Popen, "wait", wait_interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        run(probe, "a", "sleep")  # the task would sleep two minutes
    assert interrupted and vm.poll() == -9


def test_a_failure_in_the_early_vm_is_the_runs_build_error(probe):
    with pytest.raises(BuildError, match=r"probing failed \(mix probe exit 1\)"):
        run(probe, "fail")  # a VM booted as usual; its setup is remembered
    early_mix.start(probe)
    with pytest.raises(BuildError, match=r"probing failed \(mix probe exit 1\)") as failed:
        run(probe, "fail")
    log = (probe.parent / "state" / "build.log").read_text()
    assert EARLY_LINE in log and "the probe refused" in log and "last lines" in str(failed.value)


def test_the_remembered_setup_holds_xrels_variables_not_the_users(probe, monkeypatch):
    monkeypatch.setenv("USER_SECRET", "s3cret-value")
    early_mix.start(probe)  # the environment the build started in
    run(probe, "a")
    hints = list((Path(os.environ["XREL_CACHE_DIR"]) / "builds" / "early-mix").glob("*.json"))
    assert len(hints) == 1
    text = hints[0].read_text()
    assert '"PROBE": "a"' in text and "s3cret-value" not in text and "USER_SECRET" not in text


def test_a_command_line_that_built_a_project_starts_its_vm_at_its_next_run(probe, tmp_path, monkeypatch):
    """start_for_command: the project dir is looked up by the exact command line and directory of
    the last build (nothing is parsed before the CLI is imported)."""
    monkeypatch.setattr(early_mix, "_command", None)
    monkeypatch.chdir(tmp_path)
    argv = ["-q", "build", "-t", TARGET, str(probe)]
    early_mix.start_for_command(argv)  # never ran: nothing started
    assert run(probe, "a")["early_pid"] is None  # (which remembers the command's project)
    early_mix.stop(probe)
    early_mix.start_for_command(argv)
    assert run(probe, "a")["early_pid"] is not None
    early_mix.stop(probe)
    for other_dir, other_argv in ((probe, argv), (tmp_path, [*argv[:-1], "--offline", str(probe)])):
        monkeypatch.chdir(other_dir)
        early_mix.start_for_command(other_argv)
        assert str(probe.resolve()) not in early_mix._started, (other_dir, other_argv)


def test_the_xrel_command_starts_the_vm_before_importing_its_cli():
    """The entry point imports early_mix before the CLI (click and the commands: ~0.05 s)."""
    probe = ("import runpy, sys; sys.argv = ['xrel', 'build', '--help']\n"
             "try:\n    runpy.run_module('xrel', run_name='__main__', alter_sys=True)\n"
             "except SystemExit:\n    pass\n"
             "mods = list(sys.modules); print(mods.index('xrel.release.early_mix') < mods.index('xrel.cli'))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "True", proc.stdout + proc.stderr


def test_xrel_early_mix_0_turns_it_off(probe, monkeypatch):
    run(probe, "a")
    monkeypatch.setenv("XREL_EARLY_MIX", "0")
    early_mix.start(probe)
    assert run(probe, "a")["early_pid"] is None


def release_contents(release: Path) -> dict[str, str]:
    """Every file's bytes (digest) and mode, but mix's random per-build COOKIE."""
    return {str(p.relative_to(release)): f"{oct(p.lstat().st_mode)}:{hashlib.sha256(p.read_bytes()).hexdigest()}"
            for p in sorted(release.rglob("*")) if p.is_file() and not p.is_symlink()
            and p.relative_to(release).as_posix() != "releases/COOKIE"}


@pytest.mark.slow
def test_xrel_build_runs_the_edit_loops_release_in_the_early_vm_and_makes_the_same_release(tmp_path, monkeypatch):
    """The second build of an edited project runs `mix release` in the early VM (its log says so);
    building the same sources again without it makes the same release, file for file."""
    project = copy_fixtures(tmp_path, "pure_app") / "pure_app"
    out = tmp_path / "out"
    xrel.build(project, TARGET, out=out)
    source = project / "lib" / "pure_app.ex"
    source.write_text(source.read_text().rstrip()[:-3] + "  def edited, do: :yes\nend\n")
    early = xrel.build(project, TARGET, out=out).targets[0]
    state = next(cache.area("builds").glob(f"{project_key(project, 'prod')}/prod/{TARGET}-*"))
    assert EARLY_LINE in (state / "build.log").read_text()
    early_release = release_contents(Path(early.release_dir))
    assert any(b"edited" in (Path(early.release_dir) / rel).read_bytes() for rel in early_release if "pure_app-" in rel)

    (state / "last-build.json").unlink()  # the same sources built again, by a VM booted as usual
    monkeypatch.setattr(early_mix, "ENABLED", False)
    plain = xrel.build(project, TARGET, out=out).targets[0]
    assert EARLY_LINE not in (state / "build.log").read_text()
    assert release_contents(Path(plain.release_dir)) == early_release
