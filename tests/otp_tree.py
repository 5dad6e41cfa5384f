"""Build OTP trees for any target, for tests of sources that cannot be reached from here.

BEAM files and .app files are portable, so they are copied from the host's OTP; every native
file (ERTS executables, NIFs and port programs in priv/) is replaced by a real binary that zig
builds for the target. The result has the layout and binary formats of a real runtime for
that target, so the code under test (download, verify, unpack, normalize, inspect, mix release)
runs exactly as it would on an upstream archive.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

from xrel.host import host_erlang
from xrel.inspection import binaries
from xrel.targets import Target
from xrel.zig.toolchain import ZigToolchain

_EXE = "int main(int argc, char **argv) { (void)argc; (void)argv; return 0; }\n"
_LIB = "int xrel_test_stub(void) { return 42; }\n"
ERTS_PROGRAMS = ("beam.smp", "erlexec", "erl_child_setup", "epmd", "inet_gethost", "heart", "escript", "erlc")


@functools.cache
def stub_binaries(target_name: str) -> tuple[Path, Path]:
    """(executable, shared library) built by zig for the target, cached per test session."""
    target = Target.parse(target_name)
    out = Path(tempfile.mkdtemp(prefix=f"xrel-stub-{target.name}-"))
    env = ZigToolchain(target).env()
    (out / "exe.c").write_text(_EXE)
    (out / "lib.c").write_text(_LIB)
    exe = out / ("stub.exe" if target.os == "windows" else "stub")
    lib = out / "stub.so"
    subprocess.run([env["CC"], "-O1", str(out / "exe.c"), "-o", str(exe)], check=True)
    subprocess.run([env["CC"], "-O1", "-shared", "-fPIC", str(out / "lib.c"), "-o", str(lib)], check=True)
    return exe, lib


def _replace_natives(tree: Path, target: Target) -> None:
    exe, lib = stub_binaries(target.name)
    for path in binaries.native_files(tree):
        info = binaries.read(path)
        if info.format == "ar":
            continue
        stub = lib if info.kind == "shared" else exe
        path.unlink()
        name = path.name
        if target.os == "windows" and path.suffix == ".so":
            name = path.stem + ".dll"
        elif target.os == "windows" and info.kind == "executable" and not path.suffix:
            name = path.name + ".exe"
        shutil.copy2(stub, path.with_name(name))


def build_otp_tree(target: str | Target, dest: Path, *, apps: tuple[str, ...] | None = None,
                   otp_version: str | None = None) -> Path:
    """An installed OTP root for `target` at `dest` (erts-V/bin, erts-V/include, lib/, releases/)."""
    target = Target.parse(target)
    host = host_erlang()
    otp_version = otp_version or (host.root / "releases" / host.otp_release / "OTP_VERSION").read_text().strip()
    dest.mkdir(parents=True, exist_ok=True)
    erts = dest / f"erts-{host.erts_version}"
    (erts / "bin").mkdir(parents=True)
    shutil.copytree(host.root / f"erts-{host.erts_version}" / "include", erts / "include")
    exe, _lib = stub_binaries(target.name)
    for name in ERTS_PROGRAMS:
        shutil.copy2(exe, erts / "bin" / (name + (".exe" if target.os == "windows" else "")))
    wanted = set(apps) if apps else None
    for app_dir in sorted((host.root / "lib").iterdir()):
        name = app_dir.name.rsplit("-", 1)[0]
        if wanted is not None and name not in wanted:
            continue
        shutil.copytree(app_dir, dest / "lib" / app_dir.name, symlinks=False)
    _replace_natives(dest / "lib", target)
    rel = dest / "releases" / otp_version.split(".")[0]
    rel.mkdir(parents=True)
    (rel / "OTP_VERSION").write_text(otp_version + "\n")
    (dest / "releases" / "start_erl.data").write_text(f"{host.erts_version} {otp_version.split('.')[0]}\n")
    if target.os != "windows":
        (dest / "bin").mkdir()
        (dest / "bin" / "erl").write_text(
            f"#!/bin/sh\nROOTDIR=/opt/otp-build-root\nBINDIR=$ROOTDIR/erts-{host.erts_version}/bin\n"
            'exec "$BINDIR/erlexec" "$@"\n')
        (dest / "bin" / "erl").chmod(0o755)
    return dest


# The applications a typical Elixir release needs (keeps test archives small).
RELEASE_APPS = ("kernel", "stdlib", "sasl", "compiler", "crypto", "asn1", "public_key", "ssl",
                "runtime_tools", "erl_interface", "syntax_tools", "tools", "inets")


# erts/etc/unix/erl.src.src as a built tree carries it: @VSN@ and @ROOT@ (the root, or
# %FINAL_ROOTDIR% for Install to fill in) to substitute.
ERL_SCRIPT = """#!/bin/sh
#
# %CopyrightBegin%
# SPDX-License-Identifier: Apache-2.0
# %CopyrightEnd%
#
prog="$0"
progdir=`dirname "${prog}"`
dyn_erl_path="${progdir}/../erts-@VSN@/bin/dyn_erl"
if [ ! -f "$dyn_erl_path" ]
then
    dyn_erl_path="${progdir}/dyn_erl"
fi

if [ -f "$dyn_erl_path" ]
then
    dyn_rootdir=`"${dyn_erl_path}" --realpath`
    dyn_rootdir=`dirname "${dyn_rootdir}"`
    dyn_rootdir=`dirname "${dyn_rootdir}"`
else
    dyn_rootdir=""
fi

if [ -z "$ERL_ROOTDIR" ]
then
    ROOTDIR="@ROOT@"
    if [ "$dyn_rootdir" != "$ROOTDIR" ] && [ "$dyn_rootdir" != "" ]
    then
        # It is likely that the files have been copied or moved
        ROOTDIR="$dyn_rootdir"
    fi
else
    ROOTDIR="$ERL_ROOTDIR"
fi
BINDIR="$ROOTDIR/erts-@VSN@/bin"
EMU=beam
PROGNAME=`basename "$0"`
export EMU
export ROOTDIR
export BINDIR
export PROGNAME
exec "$BINDIR/erlexec" ${1+"$@"}
"""
