"""One mix VM for the native outputs of every extra target of a build.

An extra target compiles only its native outputs (its tree holds the first target's BEAM code), and
a VM start plus Mix's project load is most of that (~0.5 s against ~0.3 s of compilers on the
nif_make fixture). The server (compile_server.exs; its module, compile_server.ex, is compiled once
per Elixir version with xrel's other helpers: mix.helpers_ebin), started early (below) or by the
first request, enters each target's tree with `Mix.Project.in_project` and that target's whole
environment, and ends with the build. Requests come one at a time (build.NATIVE_COMPILES); each
one's output goes to its target's log, as a `mix compile` of its own would.

A build starts it when the first target's BEAM code starts compiling (xrel's mix wrapper writes
a mark then; build.build_all), or else when its release assembles. Its boot (~0.8 s of CPU with
Mix's code loaded) then runs beside that compile, not beside the assembly, which it slowed by
~0.5 s, nor between the first target's end and the extra targets' compiles. Measured on the big
benchmark project: the assembly beside the extras' start 0.94-0.98 s -> 0.42-0.64 s (0.44-0.47 s
alone); after the first target's end, both extras 1.31-1.47 s -> 0.80-0.98 s.

From a terminal (XREL_KEEP_MIX, as kept_mix.py), the VM outlives the build: it listens on a unix socket
in the user's private directory, serves the project's next build that was started the same way (a
salted digest of its environment, Elixir and these sources, checked by the build) and halts when no
build came for XREL_KEEP_MIX seconds; one started otherwise is told to halt and another boots. A
project whose native code changes (or a clean build) then pays no VM boot for its extra targets.
"""


from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path

from xrel import progress
from xrel.host import ERLANG_HINT, require
from xrel.release import early_mix, kept_mix
from xrel.release.mix import mix_failure

SCRIPT = Path(__file__).with_name("compile_server.exs")
# its schedulers do not spin when out of work: the VM waits beside the first target's BEAM compile
NO_BUSY_WAIT = ["--erl", "+sbwt none +sbwtdcpu none +sbwtdio none"]
PROTOCOL = "xrel-compile-1"
BOOT_SECONDS = 60  # a kept VM this build started must be listening by then (else one of its own)


def _request(app: str, tree: Path, env: dict[str, str]) -> bytes:
    fields = [app, str(tree), *(f"{k}={v}" for k, v in env.items())]
    return b" ".join(base64.b64encode(f.encode()) for f in fields) + b"\n"


def _vm_command() -> list[str]:
    return ["elixir", *NO_BUSY_WAIT, str(SCRIPT)]


@functools.cache
def _sources_digest() -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in (SCRIPT, SCRIPT.with_suffix(".ex")))).hexdigest()


def _kept_log(project_dir: Path) -> Path:
    """The log of the compile VM kept for the project (its socket is named after it)."""
    return early_mix.project_file(project_dir, "compile", ".compile.log")


def _kept_spec(project_dir: Path, env: dict[str, str]) -> early_mix.Spec:
    """What a kept VM for the project is started with (its own output goes to the log named here)."""
    log = _kept_log(project_dir)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    return early_mix.Spec(str(SCRIPT.parent), {**env, "XREL_SERVER_SOURCES": _sources_digest()}, str(log))


def _halt(conn, path: Path, seconds: float = 2) -> None:
    """Tell the kept VM on `conn` to halt, and wait up to `seconds` for its socket to go."""
    with conn:
        conn.sendall(b"halt\n")
    deadline = time.monotonic() + seconds
    while path.exists() and time.monotonic() < deadline:  # (it removes its socket as it halts)
        time.sleep(0.02)


def dismiss(project_dir: Path) -> bool:
    """Tell the compile VM kept for the project, if one is waiting, to halt."""
    path = kept_mix.socket_path(_kept_log(project_dir))
    found = kept_mix.greeted(path, PROTOCOL, 5)
    if found is not None:
        _halt(found[0], path)
    return found is not None


class _Pipes:
    """The requests' way to the VM and its answers' way back."""

    def __init__(self, writer, reader, closing=(), kind: str = "xrel's kept compile VM") -> None:
        self.writer, self.reader, self.closing, self.kind = writer, reader, closing, kind

    def close(self) -> None:
        for thing in (self.writer, self.reader, *self.closing):
            with contextlib.suppress(OSError):  # (a VM that died: what was left unsent is dropped)
                thing.close()


class CompileServer:
    """`mix compile` in build trees, all in one VM (started on first use; close() ends it, or hands
    a kept one back). `project_dir`: the project whose builds may keep it (None: never kept)."""

    def __init__(self, project_dir: Path | None = None) -> None:
        self.project_dir = project_dir
        self.proc: subprocess.Popen | None = None  # the VM this build started
        self.pipes: _Pipes | None = None
        self.kept: tuple[Path, str] | None = None  # a kept VM's socket and its setup's digest, till connected
        self.pid: int | None = None
        self.env: dict[str, str] = {}
        self.spawned_for = 0  # the seconds a kept VM this build started waits unused
        self.token = "xrel-compiled-" + os.urandom(8).hex()
        self.lock = threading.Lock()

    def start(self, env: dict[str, str]) -> None:
        """Start the VM now (it boots while the targets' trees are synced), unless it runs already.
        MIX_ENV and MIX_TARGET are read once, at Mix's start: the same for every target of a build."""
        with self.lock:
            if self.proc is None and self.pipes is None:
                require("elixir", ERLANG_HINT)
                self.env = env
                idle = kept_mix.keep_seconds() if self.project_dir is not None else 0
                if not (idle and self._keep(env, idle)):
                    self._boot(env)

    def _boot(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            _vm_command(), env={**env, "XREL_SERVER_TOKEN": self.token},
            cwd=str(SCRIPT.parent), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.pipes, self.pid = _Pipes(self.proc.stdin, self.proc.stdout, kind="xrel's compile VM"), self.proc.pid

    def _keep(self, env: dict[str, str], idle: int) -> bool:
        """Use the VM kept for the project if it was started as this build would start it, else start
        one to keep (it is connected to at the first request); False: none can be kept."""
        spec = _kept_spec(self.project_dir, env)
        path = kept_mix.socket_path(Path(spec.log))
        found = kept_mix.greeted(path, PROTOCOL, 5)
        if found is not None:
            conn, (_, salt, setup, token, pid) = found
            if kept_mix.digest(spec, salt) == setup and pid.isdigit():
                self._use(conn, token, pid)
                return True
            _halt(conn, path)
        import secrets  # (only a build with extra targets to compile gets here)

        salt = secrets.token_hex(8)
        setup = kept_mix.digest(spec, salt)
        if path is None or setup is None or path.exists():
            return False
        with open(spec.log, "ab") as log:
            self.proc = subprocess.Popen(
                _vm_command(), cwd=spec.cwd, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                env={**spec.env, "XREL_SERVER_TOKEN": self.token, "XREL_SERVER_SOCKET": str(path),
                     "XREL_SERVER_IDLE": str(idle), "XREL_SERVER_GREETING": f"{PROTOCOL} {salt} {setup} {self.token}"})
        self.kept, self.spawned_for = (path, setup), idle
        return True

    def _use(self, conn, token: str, pid: str) -> None:
        """Requests go to the kept VM on `conn` (its answers are marked with `token`)."""
        self.pipes, self.token, self.pid = _Pipes(conn.makefile("wb"), conn.makefile("rb"), [conn]), token, int(pid)

    def _connect_kept(self) -> None:
        """Connect to the kept VM this build started, once it listens (if it died: one of the build's own)."""
        path, setup = self.kept
        self.kept, deadline = None, time.monotonic() + BOOT_SECONDS
        while self.proc.poll() is None and not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        found = kept_mix.greeted(path, PROTOCOL, 5)
        if found is not None and found[1][2:4] == [setup, self.token] and found[1][4].isdigit():
            self._use(found[0], self.token, found[1][4])
            return
        if found is not None:
            found[0].close()
        with contextlib.suppress(OSError):  # (one that never greeted as started is of no use to anyone)
            self.proc.kill()
        self.proc = None
        self._boot(self.env)

    def compile(self, app: str, tree: Path, env: dict[str, str], log: Path, what: str) -> None:
        """`mix compile` of project `app` in `tree` with exactly `env`; BuildError (the log's tail) if it fails."""
        self.start(env)
        with self.lock:
            if self.kept is not None:
                self._connect_kept()
            status = self._run(_request(app, tree, env), tree, log)
        if status != "0":
            raise mix_failure(what, "the compile VM exited" if status is None else "mix compile failed", log)

    def _run(self, request: bytes, tree: Path, log: Path) -> str | None:
        """Send one request; copy the VM's output to `log` up to the answer, and return its status."""
        assert self.pipes is not None
        answer = self.token.encode() + b" "
        with open(log, "ab") as out:
            out.write(f"\n$ mix compile   (in {tree}, {self.pipes.kind})\n".encode())
            try:
                self.pipes.writer.write(request)
                self.pipes.writer.flush()
            except OSError:
                return None
            for line in self.pipes.reader:
                if line.startswith(answer):
                    return line[len(answer):].strip().decode()
                out.write(line)
        return None

    def close(self) -> None:
        """End the VM (EOF on its stdin), or hand a kept one back to wait for the next build."""
        if self.pipes is not None:
            self.pipes.close()
            self.pipes = None
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.spawned_for and self.proc is not None and self.proc.stdin is None and self.proc.poll() is None:
            progress.status(f"compile VM kept for the next build (it halts after {self.spawned_for} s unused"
                            " or at `xrel stop-kept-vms`)")
        self.proc = self.kept = None
