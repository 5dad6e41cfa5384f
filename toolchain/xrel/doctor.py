"""`xrel doctor`: what this machine has for xrel, and the command that installs each missing piece."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass

from xrel.emulate import qemu
from xrel.errors import XrelError
from xrel.storage import cache
from xrel.targets import all_targets


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _version_of(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[-1] if text else None


def checks() -> list[Check]:
    from xrel.host import host_erlang
    from xrel.zig.locate import find_zig

    found: list[Check] = []
    try:
        z = find_zig()
        found.append(Check("zig", True, f"zig {z.version} at {z.path} ({z.origin})"))
    except XrelError as e:
        found.append(Check("zig", False, e.message, e.hint or ""))
    try:
        h = host_erlang()
        found.append(Check("erlang", True, f"OTP {h.otp_release} (erts {h.erts_version}) at {h.root}"))
    except XrelError as e:
        found.append(Check("erlang", False, e.message, e.hint or ""))
    elixir_fix = "apt-get install -y elixir (or asdf/mise)"
    for tool in ("elixir", "mix"):
        path = shutil.which(tool)
        found.append(Check(tool, bool(path), path or f"{tool} is not on PATH", "" if path else elixir_fix))
    if found[-1].ok:
        version = _version_of(["elixir", "--version"])
        found[-2].detail = f"{version} at {found[-2].detail}"
    for tool, fix in (("make", "apt-get install -y make"), ("cmake", "apt-get install -y cmake"),
                      ("apt-get", "the debian runtime source and sysroots need apt (a Debian/Ubuntu host)"),
                      ("rebar3", "apt-get install -y rebar3 (for rebar3 deps)"),
                      ("cargo", "https://rustup.rs (for Rustler NIFs built from source)")):
        path = shutil.which(tool)
        found.append(Check(tool, bool(path), path or f"{tool} is not on PATH", "" if path else fix))
    status = (qemu.BINFMT_DIR / "status").exists()
    found.append(Check("binfmt_misc", status, "mounted" if status else "not mounted",
                       "" if status else qemu.ENABLE_BINFMT))
    for target in all_targets():
        if target.os != "linux" or target.libc != "glibc":
            continue
        e = qemu.emulation(target)
        found.append(Check(f"run {target.name}", e.possible, e.reason, "" if e.possible else e.reason))
    root = cache.cache_root()
    size = sum(entry.size for entry in cache.entries())
    found.append(Check("cache", True, f"{root} ({size / 1e6:.0f} MB)"))
    return found


def report() -> list[dict]:
    return [asdict(c) for c in checks()]
