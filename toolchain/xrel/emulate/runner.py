"""Run a release on its target CPU here: natively, under qemu-user, or in a private mount namespace."""

from __future__ import annotations

import functools
import os
import platform
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xrel import progress, recipes
from xrel.debian.sysroot import ensure_sysroot
from xrel.emulate import musl, qemu
from xrel.errors import EmulationError
from xrel.inspection.binaries import version_key
from xrel.inspection.check import Report, inspect_tree
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

    def __post_init__(self) -> None:
        # tarballs carry no releases/COOKIE (a secret): a release started here gets a throwaway one
        if not (self.release_dir / "releases" / "COOKIE").is_file():
            self.env.setdefault("RELEASE_COOKIE", secrets.token_hex(16))

    def argv(self, args: list[str]) -> list[str]:
        """The command line that starts bin/<name> ARGS in this plan's mode."""
        if self.mode != "namespace":
            return [str(self.command), *args]
        script = f'mount -t overlay xrel-sysroot -o lowerdir={self.overlay} /usr/lib && exec "$0" "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(self.command), *args]


def _host_glibc() -> tuple[int, ...]:
    lib, version = platform.libc_ver()
    return version_key(version) if lib == "glibc" else ()


@dataclass(frozen=True)
class RunRequest:
    """A release to start here: what every way of starting it needs."""

    release_dir: Path
    command: Path  # bin/<name>
    target: Target
    report: Report  # its native files, inspected against the target
    marker: ReleaseMarker | None
    sysroot_packages: tuple[str, ...] = ()
    offline: bool = False

    @property
    def runtime_meta(self) -> dict:
        """The runtime's suite, Debian version and glibc floor (empty for a release xrel did not build)."""
        return self.marker.runtime_meta if self.marker else {}


def plan(release_dir: Path, target: Target | None = None, sysroot_packages: Sequence[str] = (),
         offline: bool = False) -> Plan:
    """How to start the release here: natively, under qemu-user with a sysroot, or in a mount namespace."""
    target = target or release_target(release_dir)
    emu = qemu.emulation(target)
    if not emu.possible:
        raise EmulationError(f"cannot run a {target.name} release here: {emu.reason}",
                             "`xrel inspect` still checks it; run it on the target itself")
    request = RunRequest(release_dir, release_command(release_dir), target, inspect_tree(release_dir, target),
                         ReleaseMarker.read(release_dir), tuple(sysroot_packages), offline)
    host = host_target()
    musl_here = target.libc == "musl" and target.arch == host.arch
    same_cpu_family = target.name == host.name or (target.arch == "x86" and host.arch == "x86_64") or musl_here
    if musl_here and musl.host_has_loader(target):
        return Plan(release_dir, request.command, target, "native", dict(os.environ), None, [])
    if same_cpu_family:
        floor = version_key(request.report.glibc_floor or "0")
        if target.name == host.name and floor <= _host_glibc():
            return Plan(release_dir, request.command, target, "native", dict(os.environ), None, [])
        return _namespace_plan(request)
    if not emu.binfmt:
        raise EmulationError(f"{target.name} releases need binfmt_misc for their start script, "
                             f"which has no entry for this CPU here", qemu.ENABLE_BINFMT)
    return _qemu_plan(request)


def _qemu_plan(request: RunRequest) -> Plan:
    """Another CPU: qemu-user through binfmt_misc, its loader and libraries from a sysroot."""
    env = dict(os.environ)
    sysroot, notes = _sysroot(request)
    env["QEMU_LD_PREFIX"] = str(sysroot)
    # the arm64 JIT dual-maps code memory, which crashes under qemu-user: never added into the release
    otp_major = request.marker.otp_major if request.marker else 0
    flags = recipes.compat().jit_flags(request.target.arch, otp_major)
    if flags:
        env["ELIXIR_ERL_OPTIONS"] = (env.get("ELIXIR_ERL_OPTIONS", "") + " " + flags).strip()
        notes.append(f"added {flags} for qemu-user (not in the release)")
    return Plan(request.release_dir, request.command, request.target, "qemu", env, sysroot, notes)


@functools.cache
def private_namespace_refused() -> str | None:
    """Why `unshare --mount --propagation private` fails here (e.g. in a chroot), or None if it works."""
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True)
    return None if out.returncode == 0 else (out.stderr.strip() or f"exit {out.returncode}")


def _namespace_plan(request: RunRequest) -> Plan:
    """The CPU runs the release natively, but this system lacks its loader or a new enough glibc:
    run it in a private mount namespace with the sysroot laid over /usr/lib (needs root)."""
    target = request.target
    if (os.geteuid() != 0 or not shutil.which("unshare")) and target.libc == "musl":
        raise EmulationError(f"a {target.name} release needs the musl loader /lib/{musl.loader_name(target)}, "
                             "which this system lacks", "apt-get install musl, or run xrel as root")
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise EmulationError(f"a {target.name} release needing glibc {request.report.glibc_floor} runs here only "
                             "in a private mount namespace, which needs root and unshare(1)", "run xrel as root")
    refused = private_namespace_refused()
    if refused:
        raise EmulationError(f"a {target.name} release runs here only in a private mount namespace, and this "
                             f"system refuses one ({refused}); a chroot whose / is not a mount point does",
                             "run xrel outside the chroot, or bind-mount the chroot's root onto itself first")
    sysroot, notes = _sysroot(request)
    layers = [str(sysroot / "lib"), str(sysroot / "usr" / "lib")]
    if any(c in "".join(layers) for c in ",:"):
        raise EmulationError(f"the sysroot path {sysroot} contains ',' or ':', which overlayfs cannot take",
                             "set XREL_CACHE_DIR to a plain path")
    if target.name == host_target().name:
        # a newer glibc than this system's: the target's libraries win (host tools run on it too)
        lower, note = [*layers, "/usr/lib"], "target libc laid over /usr/lib in a private mount namespace"
    else:
        # another ABI of this CPU (i386, musl): only add what the system lacks
        lower, note = ["/usr/lib", *layers], f"{target.name} loader and libraries added in a private mount namespace"
    lower = [d for d in lower if Path(d).is_dir() and not Path(d).is_symlink()]
    return Plan(request.release_dir, request.command, target, "namespace", dict(os.environ), sysroot,
                [note, *notes], overlay=":".join(lower))


def _sysroot(request: RunRequest) -> tuple[Path, list[str]]:
    """The run sysroot for the release's needed libraries, and a warning naming any no package provides."""
    if request.target.libc == "musl":
        return _musl_sysroot(request)
    unresolved: list[str] = []
    sysroot = ensure_sysroot(request.target, request.report.needed, request.runtime_meta,
                             list(request.sysroot_packages), offline=request.offline, unresolved=unresolved)
    notes = [f"warning: no Debian package provides {', '.join(unresolved)}; whatever needs it will not load "
             f"(add one with --sysroot-package)"] if unresolved else []
    return sysroot, notes


def _musl_sysroot(request: RunRequest) -> tuple[Path, list[str]]:
    """Debian's musl loader and libc; a needed library that is not musl's own is named in a warning."""
    sysroot = musl.ensure_musl_sysroot(request.target, offline=request.offline)
    others = sorted(set(request.report.needed) - musl.provided_sonames(sysroot))
    notes = [f"warning: the musl sysroot lacks {', '.join(others)}; whatever needs it will not load"] if others else []
    return sysroot, notes


def run(release: str | Path, args: Sequence[str] = (), *, target: str | Target | None = None,
        sysroot_packages: Sequence[str] = (), **popen) -> int:
    """Run `bin/<name> ARGS` of the release on its target CPU; returns the exit code."""
    with opened_release(release) as release_dir:
        p = plan(release_dir, Target.parse(target) if target else None, sysroot_packages)
        for note in p.notes:
            progress.note(f"xrel: {note}")
        return subprocess.call(p.argv(list(args)), env=p.env, **popen)
