"""A mix VM kept between builds: the next build's first `mix release` runs in a VM already booted.

After a build run from a terminal (or with XREL_KEEP_MIX=<seconds>), xrel starts the VM its next
`mix release` would boot (the same environment, directory and log as this build's, as early_mix.py
remembers them) in the background, detached. That VM listens on a unix socket in a directory only
the user can enter ($XDG_RUNTIME_DIR/xrel, else /tmp/xrel-<uid>) and halts when no build has
connected for XREL_KEEP_MIX seconds (600 from a terminal; 0: never kept). The next build connects
when it starts: the VM greets it with a salted digest of what it was started with (the environment
itself is never written anywhere), and runs that build's `mix release` only when the build's digest
of its own run is the same; otherwise it is told to stop. A build that runs no `mix release`
(nothing changed) hands the VM back, waiting as before.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xrel.release.early_mix import Spec

IDLE_SECONDS = 600  # from a terminal, unless XREL_KEEP_MIX says otherwise
PROTOCOL = "xrel-kept-1"
# the VM's exit status, for the build that ran mix in it (not that build's child), which made the file
STATUS_SH = ('status=$1; shift; "$@"; code=$?; '
             'if [ -e "$status" ]; then echo $code > "$status.part" && mv "$status.part" "$status"; fi')
SOCKET_PATH_MAX = 100  # sun_path holds 104-108 bytes


def keep_seconds() -> int:
    """How long a kept VM waits for the next build: XREL_KEEP_MIX, else 600 from a terminal, else 0."""
    value = os.environ.get("XREL_KEEP_MIX")
    if value is None:
        return IDLE_SECONDS if sys.stdin is not None and sys.stdin.isatty() else 0
    try:
        return max(0, int(value))
    except ValueError:
        return 0


def private_dir() -> Path | None:
    """The user's own directory for sockets (None: none that only this user can enter)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    path = Path(runtime) / "xrel" if runtime else Path(os.environ.get("TMPDIR") or "/tmp") / f"xrel-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.lstat()  # (not a link to somewhere else)
    except OSError:
        return None
    return path if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077 else None


def socket_path(hint: Path) -> Path | None:
    """Where the VM kept for the project whose setup `hint` remembers listens (None: nowhere)."""
    folder = private_dir()
    if folder is None:
        return None
    path = folder / (hashlib.sha256(str(hint).encode()).hexdigest()[:16] + ".sock")
    return path if len(str(path)) <= SOCKET_PATH_MAX else None


def _stamp(path: str | None, *, content: bool = True) -> list:
    """What identifies a file: its inode (and, with `content`, its size and time: a file replaced
    or rewritten in place, as an upgraded Elixir's, differs)."""
    st = os.stat(path)
    return [os.path.realpath(path), st.st_dev, st.st_ino, *((st.st_size, st.st_mtime_ns) if content else ())]


def digest(spec: Spec, salt: str) -> str | None:
    """A salted digest of a mix run's setup and of the Elixir it would run (None: not runnable)."""
    try:
        stamps = [_stamp(spec.log, content=False), _stamp(spec.elixir()), _stamp(spec.mix()),
                  _stamp(spec.cwd, content=False)]
    except (OSError, TypeError):
        return None
    setup = [salt, spec.cwd, sorted(spec.env.items()), spec.log, stamps]
    return hashlib.sha256(json.dumps(setup).encode()).hexdigest()


@dataclass
class KeptRun:
    """`mix` running in a kept VM: waited for through the exit status its shell writes."""

    pid: int
    status: Path

    def wait(self) -> int:
        gone_since = None
        while True:
            with contextlib.suppress(OSError, ValueError):
                code = int(self.status.read_text())
                self.status.unlink(missing_ok=True)
                return code
            if not _alive(self.pid):
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since > 2:
                    return 255  # it died without its status (killed with its shell)
            time.sleep(0.01)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@dataclass
class KeptVM:
    """A connection to a kept VM that greeted this build (it serves no other meanwhile)."""

    conn: socket.socket
    salt: str
    digest: str
    status: Path
    pid: int

    def matches(self, spec: Spec) -> bool:
        return digest(spec, self.salt) == self.digest

    def run(self, line: str) -> KeptRun | None:
        try:
            self.status.write_text("")  # (the shell fills it when the VM halts)
            self.conn.sendall(line.encode())
        except OSError:  # it died meanwhile
            return None
        finally:
            self.conn.close()
        return KeptRun(self.pid, self.status)

    def stop(self, *, hand_back: bool = False) -> None:
        """Done with it: it halts, or (`hand_back`) waits for the next build again."""
        with contextlib.suppress(OSError):
            if hand_back:
                self.conn.sendall(b"\n")
        self.conn.close()


def greeted(path: Path | None, protocol: str, fields: int) -> tuple[socket.socket, list[str]] | None:
    """A connection to the VM listening on `path` and its greeting's fields (`protocol` first, `fields`
    in all), if one is waiting (a dead one's socket is removed)."""
    if path is None or not path.exists():
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(2)
    try:
        conn.connect(str(path))
        greeting = bytearray()
        while not greeting.endswith(b"\n"):  # (byte by byte: what follows is the caller's)
            byte = conn.recv(1)
            if not byte:
                raise ValueError(greeting)
            greeting += byte
        words = greeting.decode().split()
        if len(words) != fields or words[0] != protocol:
            raise ValueError(words)
        conn.settimeout(None)
        return conn, words
    except ConnectionRefusedError:  # nobody listens: its VM is gone
        path.unlink(missing_ok=True)
    except (OSError, ValueError):
        pass
    conn.close()
    return None


def connect(hint: Path) -> KeptVM | None:
    """The VM kept for this project, if one is waiting."""
    found = greeted(socket_path(hint), PROTOCOL, 5)
    if found is None:
        return None
    conn, fields = found
    try:
        status, pid = Path(base64.b64decode(fields[3]).decode()), int(fields[4])
        if status.parent == socket_path(hint).parent:
            return KeptVM(conn, fields[1], fields[2], status, pid)
    except ValueError:
        pass
    conn.close()
    return None


def spawn(hint: Path, spec: Spec, boot: Path, idle: int) -> bool:
    """Start the VM the next build's `mix release` (`spec`) would boot, kept `idle` seconds."""
    import secrets  # (at a build's end: not on the way to its start)

    path, elixir = socket_path(hint), spec.elixir()
    salt = secrets.token_hex(8)
    setup = digest(spec, salt)
    if setup is None or elixir is None or path is None or path.exists():
        return False
    for old in path.parent.glob(f"{path.stem}-*.status"):  # a status nobody read (its build was killed)
        with contextlib.suppress(OSError):
            st = old.stat()  # (an empty one: a run still going, maybe a long one)
            if time.time() - st.st_mtime > (60 if st.st_size else 86400):
                old.unlink()
    status = path.with_name(f"{path.stem}-{salt}.status")
    greeting = f"{PROTOCOL} {salt} {setup} {base64.b64encode(str(status).encode()).decode()}"
    try:
        with open(spec.log, "ab") as log:
            subprocess.Popen(["/bin/sh", "-c", STATUS_SH, "sh", str(status), elixir, str(boot), str(path), str(idle),
                              greeting], cwd=spec.cwd, env=spec.env, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    except OSError:
        return False
    return True
