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
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from pathlib import Path

from xrel.host import ERLANG_HINT, require
from xrel.release.mix import mix_failure

SCRIPT = Path(__file__).with_name("compile_server.exs")
# its schedulers do not spin when out of work: the VM waits beside the first target's BEAM compile
NO_BUSY_WAIT = ["--erl", "+sbwt none +sbwtdcpu none +sbwtdio none"]


def _request(app: str, tree: Path, env: dict[str, str]) -> bytes:
    fields = [app, str(tree), *(f"{k}={v}" for k, v in env.items())]
    return b" ".join(base64.b64encode(f.encode()) for f in fields) + b"\n"


class CompileServer:
    """`mix compile` in build trees, all in one VM (started on first use; close() ends it)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.token = "xrel-compiled-" + os.urandom(8).hex()
        self.lock = threading.Lock()

    def start(self, env: dict[str, str]) -> None:
        """Start the VM now (it boots while the targets' trees are synced), unless it runs already.
        MIX_ENV and MIX_TARGET are read once, at Mix's start: the same for every target of a build."""
        with self.lock:
            if self.proc is None:
                require("elixir", ERLANG_HINT)
                self.proc = subprocess.Popen(
                    ["elixir", *NO_BUSY_WAIT, str(SCRIPT)], env={**env, "XREL_SERVER_TOKEN": self.token},
                    cwd=str(SCRIPT.parent), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def compile(self, app: str, tree: Path, env: dict[str, str], log: Path, what: str) -> None:
        """`mix compile` of project `app` in `tree` with exactly `env`; BuildError (the log's tail) if it fails."""
        self.start(env)
        with self.lock:
            status = self._run(_request(app, tree, env), tree, log)
        if status != "0":
            raise mix_failure(what, "the compile VM exited" if status is None else "mix compile failed", log)

    def _run(self, request: bytes, tree: Path, log: Path) -> str | None:
        """Send one request; copy the VM's output to `log` up to the answer, and return its status."""
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        answer = self.token.encode() + b" "
        with open(log, "ab") as out:
            out.write(f"\n$ mix compile   (in {tree}, xrel's compile VM)\n".encode())
            try:
                self.proc.stdin.write(request)
                self.proc.stdin.flush()
            except OSError:
                return None
            for line in self.proc.stdout:
                if line.startswith(answer):
                    return line[len(answer):].strip().decode()
                out.write(line)
        return None

    def close(self) -> None:
        """End the VM (EOF on its stdin), if it was started."""
        if self.proc is not None:
            try:
                self.proc.communicate(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            self.proc = None
