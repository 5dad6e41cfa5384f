"""The VM booted early for a build's first `mix release` (early_mix.py), and the one kept between
builds (kept_mix.py): either runs the next run only when that run has exactly the remembered
directory, environment and log; anything else boots mix as usual and the waiting VM stops. Real
elixir VMs and a real mix project whose task reports what it saw."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import xrel
from helpers import copy_fixtures
from xrel.errors import BuildError
from xrel.release import early_mix, kept_mix
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
    if System.get_env("PROBE") == "fail" or args == ["fail"], do: Mix.raise("the probe refused")
    if args == ["sleep"], do: Process.sleep(120_000)
    seen = %{pid: System.pid(), probe: System.get_env("PROBE"), cwd: File.cwd!(), args: args}
    File.write!("seen.json", ~s({"pid": "#{seen.pid}", "probe": "#{seen.probe}", "cwd": "#{seen.cwd}", ) <>
                             ~s("args": "#{Enum.join(args, " ")}"}))
  end
end
"""
TARGET = "arm-linux-gnueabihf"
EARLY_LINE = "(xrel: mix runs in the VM it booted early, os pid "
KEPT_LINE = "(xrel: mix runs in the VM kept from the last build, os pid "


@pytest.fixture
def probe(tmp_path, isolated_cache, monkeypatch) -> Path:
    project = tmp_path / "probe"
    project.mkdir()
    (project / "mix.exs").write_text(MIX_EXS)
    yield project
    monkeypatch.setenv("XREL_KEEP_MIX", "0")
    early_mix.stop(project)
    kill_kept(project)


def kill_kept(project: Path) -> None:
    """Every VM kept for `project` killed, with its shell, and its socket gone (one still booting
    would not answer a dismissal). Each is killed by its process group (its own session): a VM the
    shell was still starting is in it too."""
    for pid in kept_vms(project, shells=True):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    early_mix.kept_socket(project).unlink(missing_ok=True)


def kept_vms(project: Path, shells: bool = False) -> list[int]:
    """The os pids of the VMs kept for `project` (their command line names its socket), and with
    `shells` those of the shells that wait for each (the shell first)."""
    socket = str(early_mix.kept_socket(project)).encode()
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes()
            if socket in args and b"early_mix.exs" in args and (shells or not args.startswith(b"/bin/sh\0")):
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return sorted(pids)


def run(project: Path, probe_value: str, *args: str, tree: Path | None = None) -> dict:
    """`mix probe <args>` as a build's first release is run (in `tree`, a copy of the project, when
    given): the early VM may take it."""
    tree = tree or project
    log = tree.parent / "state" / "build.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("")
    # (pytest's PYTEST_CURRENT_TEST differs between a fixture's run and the test's)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"} | {"PROBE": probe_value, "MIX_ENV": "dev"}
    run_mix(["probe", *args], tree, env, log, "probing", early_for=project)
    seen = json.loads((tree / "seen.json").read_text())
    text = log.read_text()
    seen["early_pid"] = text.split(EARLY_LINE)[1].split(")")[0] if EARLY_LINE in text else None
    seen["kept_pid"] = text.split(KEPT_LINE)[1].split(")")[0] if KEPT_LINE in text else None
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


def test_a_clean_builds_tree_is_made_again_for_its_early_vm_but_no_users_dir(probe):
    """A clean build: xrel's tree of the project is gone; the early VM's directory and log dir are
    made again (inside xrel's build cache only), so it boots beside the build's first steps."""
    tree = cache.area("builds") / "probe-tree" / "root" / "probe"
    tree.mkdir(parents=True)
    shutil.copy(probe / "mix.exs", tree)
    run(probe, "a", tree=tree)
    shutil.rmtree(tree.parent.parent)
    early_mix.start(probe)
    assert tree.is_dir() and (tree.parent / "state").is_dir()
    shutil.copy(probe / "mix.exs", tree)  # (the build's sync)
    assert run(probe, "a", tree=tree)["early_pid"] is not None
    early_mix.stop(probe)

    run(probe, "a")  # the project's own dir, gone, is not made again
    shutil.rmtree(probe)
    early_mix.start(probe)
    assert not probe.exists() and str(probe.resolve()) not in early_mix._started


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
@pytest.mark.parametrize("kept", [False, True], ids=["booted-early", "kept"])
def test_xrel_build_runs_the_edit_loops_release_in_a_waiting_vm_and_makes_the_same_release(tmp_path, monkeypatch,
                                                                                             kept):
    """The second build of an edited project runs `mix release` in the early VM, or in the VM the
    first build left (XREL_KEEP_MIX; the log says which); building the same sources again without
    either makes the same release, file for file."""
    project = copy_fixtures(tmp_path, "pure_app") / "pure_app"
    out = tmp_path / "out"
    monkeypatch.setenv("XREL_KEEP_MIX", "60" if kept else "0")
    try:
        xrel.build(project, TARGET, out=out)
        if kept:
            kept_ready(project)
        source = project / "lib" / "pure_app.ex"
        source.write_text(source.read_text().rstrip()[:-3] + "  def edited, do: :yes\nend\n")
        early = xrel.build(project, TARGET, out=out).targets[0]
    finally:
        kill_kept(project)
    state = next(cache.area("builds").glob(f"{project_key(project, 'prod')}/prod/{TARGET}-*"))
    assert (KEPT_LINE if kept else EARLY_LINE) in (state / "build.log").read_text()
    early_release = release_contents(Path(early.release_dir))
    assert any(b"edited" in (Path(early.release_dir) / rel).read_bytes() for rel in early_release if "pure_app-" in rel)

    (state / "last-build.json").unlink()  # the same sources built again, by a VM booted as usual
    monkeypatch.setattr(early_mix, "ENABLED", False)
    plain = xrel.build(project, TARGET, out=out).targets[0]
    assert EARLY_LINE not in (state / "build.log").read_text() and KEPT_LINE not in (state / "build.log").read_text()
    assert release_contents(Path(plain.release_dir)) == early_release


def kept_ready(project: Path) -> int:
    """After a build's end: the os pid of the VM kept for the next one, once it listens."""
    socket, deadline = early_mix.kept_socket(project), time.monotonic() + 60
    while not socket.exists():
        assert time.monotonic() < deadline, "no VM kept"
        time.sleep(0.05)
    return kept_vms(project)[0]


def gone(pid: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def kept(probe, monkeypatch) -> int:
    """A VM kept for `probe` after a first run (PROBE=a), as after a build from a terminal."""
    monkeypatch.setenv("XREL_KEEP_MIX", "60")
    assert run(probe, "a")["kept_pid"] is None
    early_mix.stop(probe)  # the build's end: the next build's VM is started and kept
    return kept_ready(probe)


def test_a_vm_kept_after_a_build_runs_the_next_builds_release(probe, kept):
    early_mix.start(probe)  # the next build connects to it
    seen = run(probe, "a", "y", "z")
    assert seen["kept_pid"] == seen["pid"] == str(kept), seen
    assert (seen["probe"], seen["cwd"], seen["args"]) == ("a", str(probe), "y z")
    assert gone(kept)  # it ran one build's mix and halted
    early_mix.stop(probe)
    assert kept_ready(probe) != kept  # a new one waits for the build after


def test_a_kept_vm_started_otherwise_is_not_used_and_halts(probe, kept):
    early_mix.start(probe)
    seen = run(probe, "b")  # PROBE changed: not what the kept VM was started with
    assert seen["kept_pid"] is None and seen["early_pid"] is None and seen["probe"] == "b"
    early_mix.stop(probe)
    assert gone(kept)
    kept_ready(probe)  # kept for the changed setup now
    early_mix.start(probe)
    assert run(probe, "b")["kept_pid"] is not None


def test_a_kept_vm_that_cannot_serve_the_starting_build_stops_and_an_early_vm_boots(probe, kept, monkeypatch):
    """Known at the build's start (its environment differs from the one the VM was kept with): the
    kept VM stops at once and the early VM boots instead, for the setup the build will run."""
    monkeypatch.setenv("SHELL_CHANGED", "1")
    early_mix.start(probe)
    assert gone(kept)
    assert run(probe, "a")["early_pid"] is not None


def test_a_build_that_runs_no_mix_hands_the_kept_vm_back(probe, kept):
    early_mix.start(probe)
    early_mix.stop(probe)  # e.g. nothing changed: no mix release
    assert kept_ready(probe) == kept
    early_mix.start(probe)
    assert run(probe, "a")["kept_pid"] == str(kept)


def test_a_failure_in_the_kept_vm_is_the_runs_build_error(probe, kept):
    early_mix.start(probe)
    with pytest.raises(BuildError, match=r"probing failed \(mix probe exit 1\)"):
        run(probe, "a", "fail")
    log = (probe.parent / "state" / "build.log").read_text()
    assert KEPT_LINE in log and "the probe refused" in log


def test_an_interrupted_run_kills_the_kept_vm(probe, kept, monkeypatch):
    early_mix.start(probe)
    real_wait, interrupted = kept_mix.KeptRun.wait, []

    def wait_interrupted_once(self):
        if not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt
        return real_wait(self)

    monkeypatch.setattr(kept_mix.KeptRun, "wait", wait_interrupted_once)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run(probe, "a", "sleep")  # the task would sleep two minutes
    assert interrupted and gone(kept, 5) and time.monotonic() - started < 60


def test_xrel_stop_kept_vms_stops_the_kept_vm(probe, kept):
    stopped = subprocess.run([sys.executable, "-m", "xrel", "stop-kept-vms", str(probe)],
                             capture_output=True, text=True, check=True)
    assert stopped.stdout.strip() == "stopped the kept mix VM" and gone(kept, 10)
    assert not early_mix.kept_socket(probe).exists()
    again = subprocess.run([sys.executable, "-m", "xrel", "stop-kept-vms", str(probe), "--json"],
                           capture_output=True, text=True, check=True)
    assert json.loads(again.stdout) == {"mix_vm": False, "compile_vm": False}


def test_a_kept_vm_halts_when_no_build_comes(probe, monkeypatch):
    monkeypatch.setenv("XREL_KEEP_MIX", "1")
    run(probe, "a")
    early_mix.stop(probe)
    pid = kept_ready(probe)
    assert gone(pid) and not early_mix.kept_socket(probe).exists()


def test_the_kept_vm_is_found_in_a_private_directory_and_shows_no_user_secret(probe, monkeypatch):
    monkeypatch.setenv("USER_SECRET", "s3cret-value")
    monkeypatch.setenv("XREL_KEEP_MIX", "60")
    run(probe, "a")
    early_mix.stop(probe)
    pid = kept_ready(probe)
    socket = early_mix.kept_socket(probe)
    assert socket.parent.stat().st_mode & 0o777 == 0o700 and socket.parent.stat().st_uid == os.getuid()
    assert b"s3cret-value" not in Path(f"/proc/{pid}/cmdline").read_bytes()  # (`ps` shows it to all)
    for folder in (socket.parent, Path(os.environ["XREL_CACHE_DIR"])):
        for path in folder.rglob("*"):
            assert not path.is_file() or b"s3cret-value" not in path.read_bytes(), path


def test_a_vm_is_kept_from_a_terminal_unless_xrel_keep_mix_says(monkeypatch):
    class Terminal:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.delenv("XREL_KEEP_MIX")
    monkeypatch.setattr(sys, "stdin", Terminal(True))
    assert kept_mix.keep_seconds() == kept_mix.IDLE_SECONDS
    monkeypatch.setattr(sys, "stdin", Terminal(False))
    assert kept_mix.keep_seconds() == 0
    for value, seconds in (("0", 0), ("5", 5), ("soon", 0)):
        monkeypatch.setenv("XREL_KEEP_MIX", value)
        monkeypatch.setattr(sys, "stdin", Terminal(True))
        assert kept_mix.keep_seconds() == seconds
