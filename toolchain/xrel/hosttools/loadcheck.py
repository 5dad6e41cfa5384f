"""Can the host OTP load Elixir's BEAM files? (Files compiled by a newer OTP fail to load.)

The answer is kept in the cache (host/elixir-load-<key>.json), keyed by both roots."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from xrel.errors import BuildError, NotAvailableError
from xrel.storage import cache
from xrel.storage.files import atomic_write

# every module of the ebin dir in XREL_EBIN, loaded; prints "xrel-load <failed> <total> <failed names>"
# (on a line of its own: the loader's error reports go to standard output too)
_PROBE = (
    'Dir = os:getenv("XREL_EBIN"), {ok, Files} = file:list_dir(Dir), '
    'Ms = [list_to_atom(filename:basename(F, ".beam")) || F <- Files, filename:extension(F) =:= ".beam"], '
    'Bad = [M || M <- Ms, element(1, code:ensure_loaded(M)) =/= module], '
    'io:format("~nxrel-load ~p ~p ~s~n", [length(Bad), length(Ms), lists:join(" ", [atom_to_list(M) || M <- Bad])]), '
    "halt()."
)


@dataclass(frozen=True)
class LoadResult:
    failed: int
    total: int
    examples: tuple[str, ...]


def _identity(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_mtime_ns}"


def _key(otp_root: Path, elixir_root: Path) -> str:
    ebin = elixir_root / "lib" / "elixir" / "ebin"
    text = "|".join(_identity(p) for p in (otp_root, otp_root / "bin" / "erl", elixir_root, ebin))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def load_modules(otp_root: Path, elixir_root: Path) -> LoadResult:
    """Load every module of <elixir_root>/lib/elixir/ebin with <otp_root>/bin/erl (cached)."""
    record = cache.area("host") / f"elixir-load-{_key(otp_root, elixir_root)}.json"
    try:
        saved = json.loads(record.read_text())
        return LoadResult(saved["failed"], saved["total"], tuple(saved["examples"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    ebin = elixir_root / "lib" / "elixir" / "ebin"
    erl = otp_root / "bin" / "erl"
    env = {**os.environ, "XREL_EBIN": str(ebin)}
    out = subprocess.run([str(erl), "-noshell", "-noinput", "-pa", str(ebin), "-eval", _PROBE],
                         capture_output=True, text=True, timeout=300, env=env)
    found = [line.split()[1:] for line in out.stdout.splitlines() if line.startswith("xrel-load ")]
    fields = found[-1] if found else []
    if out.returncode != 0 or len(fields) < 2 or not all(c.isdigit() for c in fields[:2]):
        detail = " ".join((out.stderr or out.stdout).split())[:200]
        raise BuildError(f"{erl} could not load Elixir's modules from {ebin}: {detail}",
                         "the provided OTP does not run on this host")
    result = LoadResult(int(fields[0]), int(fields[1]), tuple(fields[2:7]))
    atomic_write(record, json.dumps({"otp_root": str(otp_root), "elixir_root": str(elixir_root),
                                     "failed": result.failed, "total": result.total,
                                     "examples": list(result.examples)}))
    return result


def require_loadable(otp_root: Path, otp_version: str, elixir_root: Path, elixir_version: str, source: str,
                     alternative: str | None) -> LoadResult:
    """Raise a one-line error when any of Elixir's modules fail to load on this OTP."""
    result = load_modules(otp_root, elixir_root)
    if result.failed:
        major = otp_version.split(".")[0]
        example = f", e.g. {alternative}" if alternative else ""
        raise NotAvailableError(
            f"Elixir {elixir_version} (from {source}) was compiled by a newer OTP than {otp_version}: "
            f"{result.failed} of {result.total} modules fail to load",
            f"pin an Elixir built for OTP {major}{example}")
    return result
