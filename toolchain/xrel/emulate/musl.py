"""Run sysroots for musl releases: Debian's `musl` package (the loader and libc) for the target's
CPU, from the newest Debian suite that builds it, unpacked into the cache with relative links
(so qemu's QEMU_LD_PREFIX and an overlay over /usr/lib both find the loader)."""

from __future__ import annotations

import os
from pathlib import Path

from xrel import recipes
from xrel.debian import suites
from xrel.debian.sysroot import cached_sysroot
from xrel.errors import EmulationError
from xrel.storage.archive import extract_deb
from xrel.storage.download import fetch_verified
from xrel.targets import Target, all_targets

PACKAGE = "musl"


def loader_name(target: Target) -> str:
    """The musl loader's file name, e.g. ld-musl-aarch64.so.1 (armhf: ld-musl-armhf.so.1)."""
    arch = {"armv7": "armhf", "arm": "armhf", "x86": "i386"}.get(target.arch, target.arch)
    return f"ld-musl-{arch}.so.1"


def host_has_loader(target: Target) -> bool:
    """Can this system start the target's musl programs itself (Debian's musl package installed)?"""
    return Path("/lib", loader_name(target)).exists()


def debian_arch(target: Target) -> str:
    """Debian's name for the target's CPU: its glibc twin's."""
    for twin in all_targets():
        if twin.arch == target.arch and twin.libc == "glibc" and twin.debian and twin.float_abi == target.float_abi:
            return twin.debian
    raise EmulationError(f"Debian has no musl package for {target.name}'s CPU", "run it on the target itself")


def relative_links(root: Path) -> None:
    """Absolute symlinks inside `root` (the loader -> /usr/lib/<triple>/libc.so) made relative."""
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            link = Path(dirpath, name)
            if link.is_symlink() and os.path.isabs(os.readlink(link)):
                inside = root / os.readlink(link).lstrip("/")
                link.unlink()
                os.symlink(os.path.relpath(inside, link.parent), link)


def ensure_musl_sysroot(target: Target, offline: bool = False) -> Path:
    """A cached sysroot holding Debian's musl loader and libc for the target's CPU."""
    arch = debian_arch(target)
    suite = [s for s in recipes.sources().debian.suites if arch in s.arches][-1]  # the newest musl
    repo = suites.apt.AptRepo(suite.name, arch, suite.also)
    repo.update(offline=offline)
    index = repo.packages()
    if PACKAGE not in index:
        raise EmulationError(f"Debian {suite.name} has no {PACKAGE} package for {arch}", "run it on the target itself")
    version = max(s["Version"] for s in index[PACKAGE])
    name = f"musl-{suite.name}-{arch}-{version}".replace(":", "_")

    def fill(tmp: Path) -> dict:
        (deb,) = repo.resolve([f"{PACKAGE}={version}"])
        extract_deb(fetch_verified(deb.url, deb.sha256, deb.filename), tmp)
        relative_links(tmp)
        if not (tmp / "lib").exists():
            os.symlink("usr/lib", tmp / "lib")  # usrmerged suites ship the loader in usr/lib only
        if not (tmp / "lib" / loader_name(target)).exists():
            raise EmulationError(f"Debian's {PACKAGE} {version} for {arch} has no lib/{loader_name(target)}")
        return {"suite": suite.name, "arch": arch, "packages": {PACKAGE: version}, "libc": "musl"}

    return cached_sysroot(name, offline, f"sysroot {PACKAGE} {version} ({arch})", fill)



def provided_sonames(root: Path) -> set[str]:
    """The file names of the shared libraries in a sysroot (musl's libc is `libc.so`)."""
    return {p.name for p in root.rglob("*.so*")}
