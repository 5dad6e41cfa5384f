"""Run a release on its target CPU here: natively, under qemu-user, or in a private mount namespace."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xrel import progress, recipes
from xrel.debian.sysroot import ensure_sysroot
from xrel.emulate import qemu
from xrel.errors import EmulationError
from xrel.inspection.binaries import version_key
from xrel.inspection.check import inspect_tree
from xrel.release.marker import ReleaseMarker, opened_release, release_command, release_target
from xrel.targets import Target, host_target


@dataclass
class Plan:
    """How to start a release here."""

    release_dir: Path
    command: Path  # bin/<name>
    target: Target
    mode: str  # native | qemu | namespace
    env: dict[str, str]
    sysroot: Path | None = None
    notes: list[str] = field(default_factory=list)
    overlay: str = ""  # namespace mode: the lowerdir list mounted over /usr/lib

    def argv(self, args: list[str]) -> list[str]:
        """The command line that starts bin/<name> ARGS in this plan's mode."""
        if self.mode != "namespace":
            return [str(self.command), *args]
        script = f'mount -t overlay xrel-sysroot -o lowerdir={self.overlay} /usr/lib && exec "$0" "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(self.command), *args]


def _host_glibc() -> tuple[int, ...]:
    lib, version = platform.libc_ver()
    return version_key(version) if lib == "glibc" else ()


def plan(release_dir: Path, target: Target | None = None, sysroot_packages: Sequence[str] = (),
         offline: bool = False) -> Plan:
    """How to start the release here: natively, under qemu-user with a sysroot, or in a mount namespace."""
    target = target or release_target(release_dir)
    emu = qemu.emulation(target)
    if not emu.possible:
        raise EmulationError(f"cannot run a {target.name} release here: {emu.reason}",
                             "`xrel inspect` still checks it; run it on the target itself")
    command = release_command(release_dir)
    report = inspect_tree(release_dir, target)
    marker = ReleaseMarker.read(release_dir)
    meta = marker.runtime_meta if marker else {}
    env = dict(os.environ)
    host = host_target()
    same_cpu_family = target.name == host.name or (target.arch == "x86" and host.arch == "x86_64")
    if same_cpu_family:
        floor = version_key(report.glibc_floor or "0")
        if target.name == host.name and floor <= _host_glibc():
            return Plan(release_dir, command, target, "native", env, None, [])
        return _namespace_plan(release_dir, command, target, report, meta, sysroot_packages, offline, env)
    if not emu.binfmt:
        raise EmulationError(f"{target.name} releases need binfmt_misc for their start script, "
                             f"which has no entry for this CPU here", qemu.ENABLE_BINFMT)
    sysroot, notes = _sysroot(target, report, meta, sysroot_packages, offline)
    env["QEMU_LD_PREFIX"] = str(sysroot)
    # the arm64 JIT dual-maps code memory, which crashes under qemu-user: never added into the release
    flags = recipes.compat().jit_flags(target.arch, marker.otp_major if marker else 0)
    if flags:
        env["ELIXIR_ERL_OPTIONS"] = (env.get("ELIXIR_ERL_OPTIONS", "") + " " + flags).strip()
        notes.append(f"added {flags} for qemu-user (not in the release)")
    return Plan(release_dir, command, target, "qemu", env, sysroot, notes)


def _namespace_plan(release_dir, command, target, report, meta, sysroot_packages, offline, env) -> Plan:
    """The CPU runs the release natively, but this system lacks its loader or a new enough glibc:
    run it in a private mount namespace with the sysroot laid over /usr/lib (needs root)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise EmulationError(f"a {target.name} release needing glibc {report.glibc_floor} runs here only in a "
                             "private mount namespace, which needs root and unshare(1)", "run xrel as root")
    sysroot, notes = _sysroot(target, report, meta, sysroot_packages, offline)
    layers = [str(sysroot / "lib"), str(sysroot / "usr" / "lib")]
    if any(c in "".join(layers) for c in ",:"):
        raise EmulationError(f"the sysroot path {sysroot} contains ',' or ':', which overlayfs cannot take",
                             "set XREL_CACHE_DIR to a plain path")
    if target.name == host_target().name:
        # a newer glibc than this system's: the target's libraries win (host tools run on it too)
        lower, note = [*layers, "/usr/lib"], "target libc laid over /usr/lib in a private mount namespace"
    else:
        # another ABI of this CPU (i386 on x86_64): only add what the system lacks
        lower, note = ["/usr/lib", *layers], "i386 loader and libraries added in a private mount namespace"
    lower = [d for d in lower if Path(d).is_dir() and not Path(d).is_symlink()]
    return Plan(release_dir, command, target, "namespace", env, sysroot, [note, *notes], overlay=":".join(lower))


def _sysroot(target, report, meta, sysroot_packages, offline) -> tuple[Path, list[str]]:
    unresolved: list[str] = []
    sysroot = ensure_sysroot(target, report.needed, meta, list(sysroot_packages), offline=offline,
                             unresolved=unresolved)
    notes = [f"warning: no Debian package provides {', '.join(unresolved)}; whatever needs it will not load "
             f"(add one with --sysroot-package)"] if unresolved else []
    return sysroot, notes


def run(release: str | Path, args: Sequence[str] = (), *, target: str | Target | None = None,
        sysroot_packages: Sequence[str] = (), **popen) -> int:
    """Run `bin/<name> ARGS` of the release on its target CPU; returns the exit code."""
    with opened_release(release) as release_dir:
        p = plan(release_dir, Target.parse(target) if target else None, sysroot_packages)
        for note in p.notes:
            progress.note(f"xrel: {note}")
        return subprocess.call(p.argv(list(args)), env=p.env, **popen)
