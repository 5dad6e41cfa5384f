"""qemu-user and binfmt_misc: can this machine run a target's binaries?"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from xrel.targets import Target, host_target

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
INSTALL_QEMU = "apt-get install -y qemu-user-static binfmt-support"
ENABLE_BINFMT = (
    "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && update-binfmts --enable"
)


@dataclass(frozen=True)
class Emulation:
    """How a target's binaries run here: natively, under qemu, or not at all (and why)."""

    target: str
    mode: str  # "native", "qemu", "none"
    qemu: str | None
    binfmt: bool
    reason: str

    @property
    def possible(self) -> bool:
        return self.mode != "none"


def find_qemu(arch: str) -> str | None:
    for name in (f"qemu-{arch}-static", f"qemu-{arch}"):
        path = shutil.which(name)
        if path:
            return path
    return None


def binfmt_registered(arch: str) -> bool:
    """Is a binfmt_misc handler for this qemu arch registered and enabled?"""
    if not (BINFMT_DIR / "status").exists():
        return False
    entry = BINFMT_DIR / f"qemu-{arch}"
    try:
        return entry.read_text().startswith("enabled")
    except OSError:
        return False


def emulation(target: Target) -> Emulation:
    """Whether and how `target` binaries can be run on this machine."""
    host = host_target()
    if target.os != "linux":
        return Emulation(target.id, "none", None, False, f"{target.os} binaries cannot run on this machine")
    if sys.platform != "linux":
        return Emulation(target.id, "none", None, False, "qemu-user needs a Linux host")
    qemu = find_qemu(target.qemu or "")
    if target.libc == "musl" and target.arch == host.arch:
        # this CPU runs it: the host's musl loader, else Debian's musl package in a mount namespace
        return Emulation(target.id, "native", qemu, False, "host CPU, with Debian's musl loader")
    if target.name == host.name:
        return Emulation(target.id, "native", qemu, False, "host target")
    if not qemu:
        return Emulation(target.id, "none", None, False, f"qemu-{target.qemu} is missing: {INSTALL_QEMU}")
    if target.arch == "x86" and host.arch == "x86_64":
        # the kernel runs i386 code itself, so no binfmt entry exists; xrel runs it with its sysroot
        return Emulation(target.id, "qemu", qemu, False, "i386 under qemu-i386 with a sysroot (no binfmt needed)")
    if not (BINFMT_DIR / "status").exists():
        return Emulation(target.id, "none", qemu, False, f"binfmt_misc is not mounted: {ENABLE_BINFMT}")
    if not binfmt_registered(target.qemu or ""):
        return Emulation(target.id, "none", qemu, False,
                         f"no binfmt entry for qemu-{target.qemu}: {INSTALL_QEMU} && update-binfmts --enable")
    return Emulation(target.id, "qemu", qemu, True, "qemu-user with binfmt_misc")
