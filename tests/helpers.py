"""Test helpers shared by the build, run and native-code tests (test modules import these, never each other)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xrel.emulate import musl, qemu
from xrel.emulate.runner import private_namespace_refused
from xrel.targets import Target, host_target

FIXTURES = Path(__file__).parent / "fixtures"
XREL = (sys.executable, "-m", "xrel")  # the xrel under test, not whichever is first on PATH
HOST_STD = "x86_64-unknown-linux-gnu"  # the Rust target whose std every Rust test needs


def cannot_run(target: str) -> str | None:
    """Why this machine cannot run the target's releases (no qemu, no binfmt, no namespace), or None."""
    t = Target.parse(target)
    emu = qemu.emulation(t)
    if not emu.possible:
        return f"cannot run {target} here: {emu.reason}"
    same_cpu_musl = t.libc == "musl" and t.arch == host_target().arch and not musl.host_has_loader(t)
    needs_namespace = t.arch == "x86" or same_cpu_musl  # (a foreign CPU's sysroot goes to qemu -L)
    if needs_namespace and os.geteuid() != 0:
        return f"{target} releases run in a private mount namespace here, which needs root"
    if needs_namespace and private_namespace_refused():
        return (f"{target} releases run in a private mount namespace here, which this system refuses "
                f"({private_namespace_refused()}: a chroot whose / is not a mount point)")
    return None


def runnable(target: str):
    """Skip (saying why) when this machine cannot run the target: no qemu, no binfmt, not root."""
    reason = cannot_run(target)
    return pytest.mark.skip(reason=reason) if reason else pytest.mark.skipif(False, reason=f"{target} runs here")


def has_rust_std(triple: str) -> bool:
    """Are cargo, rustc and the Rust std for `triple` installed?"""
    if not (shutil.which("cargo") and shutil.which("rustc")):
        return False
    out = subprocess.run(["rustc", "--print", "target-libdir", "--target", triple], capture_output=True, text=True)
    return out.returncode == 0 and any(Path(out.stdout.strip()).glob("libstd-*.rlib"))


def copy_fixtures(dest: Path, *names: str) -> Path:
    """Copy fixture projects (and the elixir_make stand-in they use) side by side into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in {*names, "elixir_make"}:
        shutil.copytree(FIXTURES / name, dest / name, symlinks=True,
                        ignore=shutil.ignore_patterns("_build", "deps", "*.o"))
    return dest


def tree_digest(root: Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """Path -> digest of content, mode and link target of every entry under `root`."""
    digests = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if os.path.normpath(os.path.join(rel_dir, d)) not in exclude]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath) / name
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if p.is_symlink():
                digests[rel] = "link:" + os.readlink(p)
            else:
                st = p.stat()
                digests[rel] = f"{oct(st.st_mode)}:{st.st_mtime_ns}:" + hashlib.sha256(p.read_bytes()).hexdigest()
    return digests


def host_release(project: Path) -> subprocess.CompletedProcess:
    """The user's own `mix release` on the host (must keep working after xrel)."""
    env = {**os.environ, "MIX_ENV": "prod"}
    for var in ("MIX_EXS", "CC", "CXX", "ERTS_INCLUDE_DIR"):
        env.pop(var, None)
    return subprocess.run(["mix", "release", "--overwrite"], cwd=project, env=env, capture_output=True, text=True)


def marker(binary: Path) -> str:
    """The xrel-fixture marker string compiled into the fixture NIF."""
    data = binary.read_bytes()
    start = data.index(b"xrel-fixture:")
    return data[start:data.index(b";", start)].decode()


def untar(tarball: Path, dest: Path) -> None:
    """Extract a release tarball the way a node would (modes kept; on Pythons with extraction
    filters, the "tar" filter; a stock Debian 12's Python 3.11.2 predates them)."""
    import tarfile

    with tarfile.open(tarball) as tar:
        if hasattr(tarfile, "tar_filter"):
            tar.extractall(dest, filter="tar")
        else:
            tar.extractall(dest)
