"""Facts about the host's Erlang/Elixir installation, asked once per process."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from xrel.errors import MissingToolError
from xrel.storage.files import atomic_write

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


@functools.cache
def host_otp_major() -> int:
    """The host's OTP major, read from its root's releases/start_erl.data when `erl` on PATH
    links into an installed OTP (no VM started); else asked from `erl` itself."""
    erl = require("erl")
    data = Path(erl).resolve().parent.parent / "releases" / "start_erl.data"
    fields = data.read_text().split() if data.is_file() else []
    if len(fields) == 2 and fields[1].isdigit():
        return int(fields[1])
    return host_erlang().otp_major


def _identity(program: str | None) -> str:
    """What an installed program is: its real path, size and mtime (changes on upgrade)."""
    if not program:
        return "-"
    real = Path(program).resolve()
    st = real.stat()
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


@functools.cache
def host_erlang() -> HostErlang:
    """The host's Erlang/Elixir, probed once per installation (the answer is kept in the cache:
    starting erl and elixir costs half a second on every xrel command otherwise)."""
    from xrel.storage import cache

    erl = require("erl")
    key = f"{_identity(erl)}|{_identity(shutil.which('elixir'))}"
    record = cache.area("host") / "erlang.json"
    try:
        saved = json.loads(record.read_text())
        if saved["key"] == key:
            return HostErlang(Path(saved["root"]), *saved["fields"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    out = subprocess.run([erl, "-noshell", "-eval", _PROBE], capture_output=True, text=True, timeout=120)
    lines = out.stdout.split("\n")
    if out.returncode != 0 or len(lines) < 4:
        raise MissingToolError(f"`erl` did not run: {out.stderr.strip()[:200]}", ERLANG_HINT)
    found = HostErlang(Path(lines[0]), lines[1], lines[2], lines[3], elixir_version())
    atomic_write(record, json.dumps({"key": key, "root": lines[0],
                                     "fields": [lines[1], lines[2], lines[3], found.elixir_version]}))
    return found


@functools.cache
def elixir_version() -> str | None:
    elixir = shutil.which("elixir")
    if not elixir:
        return None
    out = subprocess.run([elixir, "-e", "IO.puts(System.version())"], capture_output=True, text=True, timeout=120)
    return out.stdout.strip() or None if out.returncode == 0 else None
