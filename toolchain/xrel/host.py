"""Facts about the Erlang/Elixir that `erl` and `elixir` on PATH are (the installed ones, or those xrel
provides for a build by putting them first on PATH), asked once per installation."""

from __future__ import annotations

import functools
import json
import shutil
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

    @property
    def otp_version(self) -> str:
        """The full OTP version (releases/<major>/OTP_VERSION), else the major."""
        path = self.root / "releases" / self.otp_release / "OTP_VERSION"
        return path.read_text().strip() if path.is_file() else self.otp_release

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


def host_otp_major() -> int:
    """The OTP major of `erl` on PATH, read from its root's releases/start_erl.data when it links
    into an installed OTP (no VM started); else asked from `erl` itself."""
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


def host_erlang() -> HostErlang:
    """The Erlang/Elixir on PATH now. Probed once per installation: the answer is kept in the
    cache, since starting erl and elixir costs half a second on every xrel command otherwise."""
    erl, elixir = require("erl"), shutil.which("elixir")
    return _probe(erl, elixir, f"{_identity(erl)}|{_identity(elixir)}")


def _run(args: list[str]):
    """Run a probe (subprocess is imported here: a cached answer, e.g. `xrel fetch-erts`'s, needs none)."""
    import subprocess

    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@functools.cache
def _probe(erl: str, elixir: str | None, key: str) -> HostErlang:
    from xrel.storage import cache

    record = cache.area("host") / "erlang.json"
    try:
        saved = json.loads(record.read_text())
        known = saved if isinstance(saved, dict) and "key" not in saved else {}
    except (OSError, ValueError):
        known = {}
    entry = known.get(key)
    if isinstance(entry, dict) and {"root", "fields"} <= entry.keys():
        return HostErlang(Path(entry["root"]), *entry["fields"])
    out = _run([erl, "-noshell", "-eval", _PROBE])
    lines = out.stdout.split("\n")
    if out.returncode != 0 or len(lines) < 4:
        raise MissingToolError(f"`erl` did not run: {out.stderr.strip()[:200]}", ERLANG_HINT)
    found = HostErlang(Path(lines[0]), lines[1], lines[2], lines[3], _elixir_version(elixir, key))
    known[key] = {"root": lines[0], "fields": [lines[1], lines[2], lines[3], found.elixir_version]}
    atomic_write(record, json.dumps(dict(list(known.items())[-8:]), indent=1))  # the last few installations
    return found


def elixir_version() -> str | None:
    """The version of `elixir` on PATH (None when there is none or it does not run)."""
    elixir = shutil.which("elixir")
    return _elixir_version(elixir, _identity(elixir)) if elixir else None


@functools.cache
def _elixir_version(elixir: str | None, key: str) -> str | None:
    if not elixir:
        return None
    out = _run([elixir, "-e", "IO.puts(System.version())"])
    return out.stdout.strip() or None if out.returncode == 0 else None
