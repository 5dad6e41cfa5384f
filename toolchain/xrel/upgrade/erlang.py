"""xrel_upgrade.erl run by the host's Erlang: compiled once per source and OTP release into the cache,
fed a request as an Erlang term file, answering in lines (see the module's header)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from xrel.errors import BuildError, UsageError

MODULE = "xrel_upgrade"


def term(value: object) -> str:
    """An Erlang term: str -> string (a charlist), tuple -> tuple, list -> list."""
    if isinstance(value, tuple):
        return "{" + ", ".join(term(v) for v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(term(v) for v in value) + "]"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"no Erlang term for {value!r}")


def host_erl() -> tuple[str, str]:
    """The host's erl and erlc (the ones that run mix)."""
    erl, erlc = shutil.which("erl"), shutil.which("erlc")
    if not erl or not erlc:
        raise UsageError("hot-upgrade packages need the host's erl and erlc, which are not on PATH",
                         "install Erlang (apt-get install erlang-dev), the one that runs mix")
    return erl, erlc


def helper_dir() -> Path:
    """The compiled helper's ebin dir, in the cache."""
    from xrel.storage import cache

    erl, erlc = host_erl()
    source = Path(str(resources.files("xrel.upgrade") / f"{MODULE}.erl"))
    otp = subprocess.run([erl, "-noshell", "-eval", 'io:put_chars(erlang:system_info(otp_release)), halt().'],
                         capture_output=True, text=True).stdout.strip()
    digest = hashlib.sha256(otp.encode() + b"\0" + source.read_bytes()).hexdigest()[:24]
    final = cache.area("upgrade-helper") / digest
    if not (final / f"{MODULE}.beam").is_file():
        with cache.locked("upgrade-helper", digest), cache.staging(final) as tmp:
            out = subprocess.run([erlc, "+deterministic", "-o", str(tmp), str(source)], capture_output=True, text=True)
            if out.returncode != 0:
                raise BuildError(f"compiling {source.name} failed: {(out.stderr or out.stdout).strip()[:400]}",
                                 "report this with `erlc -version`")
    return final


def run(command: str, request: object, scratch: Path) -> list[str]:
    """`xrel_upgrade:main([command, request file])`'s output lines; BuildError with its error line on failure."""
    erl, _erlc = host_erl()
    req = scratch / f"{command}.request"
    req.write_text(term(request) + ".\n", encoding="utf-8")
    out = subprocess.run([erl, "-noshell", "-pa", str(helper_dir()), "-run", MODULE, "main", command, str(req)],
                         capture_output=True, text=True, timeout=600)
    lines = out.stdout.splitlines()
    if out.returncode != 0:
        error = next((line for line in lines if line.startswith("error: ")), (out.stderr or out.stdout)[-400:])
        raise BuildError(f"{command} of the upgrade package failed: {error.removeprefix('error: ')}",
                         "check the two releases (`xrel appup --show`), or report this")
    return lines
