"""Facts about the host's Erlang/Elixir installation, asked once per process."""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import MissingToolError

ERLANG_HINT = "install Erlang/OTP and Elixir (Debian: `apt-get install erlang erlang-dev elixir`)"

_PROBE = (
    'io:format("~s~n~s~n~s~n~s~n", [code:root_dir(), erlang:system_info(otp_release), '
    'erlang:system_info(version), erlang:system_info(system_architecture)]), halt().'
)


@dataclass(frozen=True)
class HostErlang:
    root: Path
    otp_release: str  # major, e.g. "25"
    erts_version: str
    architecture: str
    elixir_version: str | None

    @property
    def otp_major(self) -> int:
        return int(self.otp_release)

    def app_dirs(self) -> dict[str, Path]:
        """OTP application name -> its directory under the host root."""
        dirs = {}
        for d in sorted((self.root / "lib").glob("*-*")):
            dirs[d.name.rsplit("-", 1)[0]] = d
        return dirs


def require(program: str, hint: str = ERLANG_HINT) -> str:
    path = shutil.which(program)
    if not path:
        raise MissingToolError(f"`{program}` is not on PATH", hint)
    return path


@functools.lru_cache(maxsize=None)
def host_otp_major() -> int:
    """The host's OTP major, read from its root's releases/start_erl.data when `erl` on PATH
    links into an installed OTP (no VM started); else asked from `erl` itself."""
    erl = require("erl")
    data = Path(erl).resolve().parent.parent / "releases" / "start_erl.data"
    fields = data.read_text().split() if data.is_file() else []
    if len(fields) == 2 and fields[1].isdigit():
        return int(fields[1])
    return host_erlang().otp_major


@functools.lru_cache(maxsize=None)
def host_erlang() -> HostErlang:
    erl = require("erl")
    out = subprocess.run([erl, "-noshell", "-eval", _PROBE], capture_output=True, text=True, timeout=120)
    lines = out.stdout.split("\n")
    if out.returncode != 0 or len(lines) < 4:
        raise MissingToolError(f"`erl` did not run: {out.stderr.strip()[:200]}", ERLANG_HINT)
    return HostErlang(Path(lines[0]), lines[1], lines[2], lines[3], elixir_version())


@functools.lru_cache(maxsize=None)
def elixir_version() -> str | None:
    elixir = shutil.which("elixir")
    if not elixir:
        return None
    out = subprocess.run([elixir, "-e", "IO.puts(System.version())"], capture_output=True, text=True, timeout=120)
    return out.stdout.strip() or None if out.returncode == 0 else None
