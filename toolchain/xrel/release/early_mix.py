"""The first target's `mix release`, its VM booted before xrel knows it will run it.

In the edit loop, xrel's own work before `mix release` (Python's start and imports, the plan, the
project's shape, the tree's sync: ~0.2 s) and the boot of mix's VM (Erlang, Elixir, Mix: ~0.3 s)
came one after the other. So a build first starts a VM with exactly what the last build of this
project ran `mix release` with (its environment, directory and log, remembered in the cache), which
boots and waits (early_mix.exs). If the build's `mix release` is started with the very same
environment, directory and log, that VM runs it (the log says so); otherwise, or when nothing needs
building, it is told to stop. The release is mix's either way: only its VM was booted sooner.
From a terminal the VM is even kept between builds (kept_mix.py). XREL_EARLY_MIX=0 turns both off.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from xrel import progress
from xrel.release import kept_mix
from xrel.storage import cache
from xrel.storage.files import write_if_changed

BOOT = Path(__file__).with_name("early_mix.exs")
ENABLED = True  # False (or XREL_EARLY_MIX=0): every mix run boots its own VM, as before


@dataclass
class Spec:
    """What a mix run is started with; the early VM serves a run only when they are equal."""

    cwd: str
    env: dict[str, str]
    log: str

    def mix(self) -> str | None:
        return shutil.which("mix", path=self.env.get("PATH"))

    def elixir(self) -> str | None:
        return shutil.which("elixir", path=self.env.get("PATH"))


@dataclass
class EarlyVM:
    """A VM this build booted, waiting on its stdin."""

    proc: subprocess.Popen
    spec: Spec

    def matches(self, spec: Spec) -> bool:
        return self.spec == spec

    def run(self, line: str) -> subprocess.Popen | None:
        if self.proc.poll() is not None:
            return None
        try:
            self.proc.stdin.write(line.encode())
            self.proc.stdin.close()
        except OSError:  # it died meanwhile
            self.stop()
            return None
        return self.proc

    def stop(self, *, hand_back: bool = False) -> None:
        """End of its input: it halts (reaped in the background, at once or when its boot is done)."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        threading.Thread(target=self.proc.wait, daemon=True).start()


_started: dict[str, EarlyVM | kept_mix.KeptVM] = {}  # project dir -> its waiting VM
_base_env: dict[str, dict[str, str]] = {}  # project dir -> the environment its build started in
_ran: dict[str, Spec] = {}  # project dir -> what its `mix release` ran with in this build
_lock = threading.Lock()
_command: Path | None = None  # where the `xrel` command line that started this process names its project


def _hint(name: str, suffix: str = ".json") -> Path:
    """The file remembering `name` (a project dir: its setup; a command line: its project)."""
    return cache.area("builds") / "early-mix" / (hashlib.sha256(name.encode()).hexdigest()[:16] + suffix)


def _key(project_dir: str | Path) -> str:
    return str(Path(project_dir).resolve())


def project_file(project_dir: str | Path, what: str, suffix: str) -> Path:
    """A file of the project's own in early-mix's directory (`what` names it among the project's)."""
    return _hint(f"{_key(project_dir)}#{what}", suffix)


def start(project_dir: str | Path) -> None:
    """Boot the VM the last `mix release` of this project would have (nothing when there was none),
    unless one kept from the last build (kept_mix.py) was started with that very setup."""
    key = _key(project_dir)
    with _lock:
        if key in _started or not enabled():
            return
        _base_env[key] = base = dict(os.environ)
        spec = _remembered(key, base)
        kept = kept_mix.connect(_hint(key))
        if kept is not None and spec is not None and kept.matches(spec):
            _started[key] = kept
        else:
            if kept is not None:
                kept.stop()  # (started otherwise, or its tree is gone)
            early = _boot(spec) if spec is not None else None
            if early is not None:
                _started[key] = early


def _remembered(key: str, base: dict[str, str]) -> Spec | None:
    """What the project's last `mix release` was started with, in this build's environment."""
    try:
        hint = json.loads(_hint(key).read_text())
        env = {k: v for k, v in base.items() if k not in hint["removed"]} | hint["added"]
        return Spec(hint["cwd"], env, hint["log"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _boot(spec: Spec) -> EarlyVM | None:
    """The early VM for `spec`, booting. Its build tree and log dir are made if they are xrel's (a
    clean build: the tree is gone, and its release's VM boots beside the project's `mix xrel.info`)."""
    elixir = spec.elixir()
    if not (elixir and spec.mix()):
        return None
    try:
        for folder in (spec.cwd, str(Path(spec.log).parent)):
            if not os.path.isdir(folder) and Path(folder).is_relative_to(cache.area("builds")):
                os.makedirs(folder)
        with open(spec.log, "ab") as log:
            proc = subprocess.Popen([elixir, str(BOOT)], cwd=spec.cwd, env=spec.env, stdin=subprocess.PIPE,
                                    stdout=log, stderr=subprocess.STDOUT)
    except (OSError, ValueError):
        return None
    return EarlyVM(proc, spec)


def claim(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen | kept_mix.KeptRun | None:
    """The waiting VM running `mix <args>` (something to wait() for or kill()), if it was started with
    exactly this run's directory, environment and log; else None (start a VM as usual)."""
    spec = Spec(str(cwd), dict(env), str(log))
    with _lock:
        for key, early in list(_started.items()):
            if not early.matches(spec):
                continue
            del _started[key]
            mix = spec.mix()
            if mix is None:
                early.stop()
                return None
            return early.run(" ".join(base64.b64encode(a.encode()).decode() for a in (mix, *args)) + "\n")
    return None


def start_for_command(argv: list[str]) -> None:
    """At the `xrel` command's start, before its command line is parsed: the early VM of the project
    this very command line, in this directory, built last time (nothing for any other)."""
    global _command
    _command = _command_hint(argv)
    try:
        project_dir = _command.read_text()
    except OSError:
        return
    start(project_dir)


def _command_hint(argv: list[str]) -> Path:
    return _hint("\0".join([os.getcwd(), *argv]), ".command")


def remember(project_dir: str | Path, cwd: Path, env: dict[str, str], log: Path) -> None:
    """What this project's `mix release` was started with, for the next build's early VM: the
    environment as changes to the one the build started in (xrel's own variables: no user secrets),
    and the project the command line that started this build named."""
    key = _key(project_dir)
    if _command is not None:
        _write_if_changed(_command, key)
    _ran[key] = Spec(str(cwd), dict(env), str(log))
    base = _base_env.get(key, dict(os.environ))
    hint = {"cwd": str(cwd), "log": str(log), "added": {k: v for k, v in env.items() if base.get(k) != v},
            "removed": sorted(k for k in base if k not in env)}
    _write_if_changed(_hint(key), json.dumps(hint, sort_keys=True))


def _write_if_changed(path: Path, text: str) -> None:
    with contextlib.suppress(OSError):  # unwritten: a later build boots its VM as usual
        write_if_changed(path, text)


@contextlib.contextmanager
def booted(project_dir: str | Path) -> Iterator[None]:
    """A build of the project: its early VM started (unless it was), stopped at the end if unused."""
    start(project_dir)
    try:
        yield
    finally:
        stop(project_dir)


def stop(project_dir: str | Path) -> None:
    """The build is over: an early VM it did not use stops (a kept one waits on if no mix release
    ran), and from a terminal the VM for the next build is started and kept (kept_mix.py)."""
    key = _key(project_dir)
    with _lock:
        early = _started.pop(key, None)
        _base_env.pop(key, None)
        ran = _ran.pop(key, None)
    if early is not None:
        early.stop(hand_back=ran is None)
    idle = kept_mix.keep_seconds()
    if ran is not None and idle and enabled() and kept_mix.spawn(_hint(key), ran, BOOT, idle):
        progress.status(f"mix VM kept for the next build (it halts after {idle} s unused or at `xrel stop-kept-vms`;"
                        " XREL_KEEP_MIX=0: never kept)")


def enabled() -> bool:
    return ENABLED and os.environ.get("XREL_EARLY_MIX") != "0"


def kept_socket(project_dir: str | Path) -> Path | None:
    """Where the VM kept for the project's next build listens once it is ready."""
    return kept_mix.socket_path(_hint(_key(project_dir)))


def dismiss(project_dir: str | Path) -> bool:
    """Stop the VM kept for the project, if one is waiting."""
    kept = kept_mix.connect(_hint(_key(project_dir)))
    if kept is not None:
        kept.stop()
    return kept is not None
