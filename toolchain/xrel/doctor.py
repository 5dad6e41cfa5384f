"""`xrel doctor`: what this machine has for xrel, and the command that installs each missing piece."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

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


def compile_check(project_dir: Path) -> Check | None:
    """Which OTP + Elixir would compile the project's BEAM code, from its xrel.toml pins (None without one)."""
    from xrel.hosttools import installed
    from xrel.project.config import load_config
    from xrel.project.plan import compiling_otp

    try:
        config = load_config(project_dir)
    except XrelError as e:
        return Check("xrel.toml", False, e.message, e.hint or "")
    if config is None:
        return None
    otp = compiling_otp(config)
    tools, why = installed(otp, config.elixir)
    if tools:
        return Check("compile with", True, f"the installed OTP {tools.otp_version} + Elixir {tools.elixir_version} "
                     f"({why})")
    return Check("compile with", True, f"OTP {otp or 'any'} + Elixir {config.elixir or 'any'} provided by xrel on "
                 f"the next build ({why})")


def checks(project_dir: Path = Path(".")) -> list[Check]:
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
        found.append(Check("erlang", False, e.message, f"{e.hint}; or pin otp and elixir in xrel.toml and xrel "
                           "provides them" if e.hint else ""))
    pins = compile_check(project_dir)
    if pins:
        found.append(pins)
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


def report(project_dir: Path = Path(".")) -> list[dict]:
    return [asdict(c) for c in checks(project_dir)]
