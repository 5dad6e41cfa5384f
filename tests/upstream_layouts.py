"""Archives and indexes in the exact layouts the upstream runtime sources publish, built from the
zig-built OTP trees of tests/otp_tree.py (real target binaries, host BEAM files).

- hex builds: `OTP-<V>/` top folder holding an UNINSTALLED `make release` tree (Install script,
  erts-<V>/bin/erl.src with %FINAL_ROOTDIR%, releases/RELEASES.src, no bin/), and builds.txt.
- erlef/otp_builds: an installed (-sasl) tree with no top folder whose scripts name the CI path
  /tmp/otp-<triple>, and builds/<triple>.csv.
- Windows: otp_win64_<V>.zip, no top folder, erl.ini files with the CI path, the installer's
  own programs (a 32-bit Uninstall.exe and vc_redist.exe, as the real zips carry).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from otp_tree import ERL_SCRIPT, stub_binaries
from xrel.host import host_erlang

BOOT_FILES = ("start_clean", "start_sasl", "no_dot_erlang", "start")
INSTALL_SH = """#!/bin/sh
# Install [-cross] [-minimal|-sasl] <ERL_ROOT>  (erts/etc/unix/Install.src, placeholders substituted)
start_option=query
while [ $# -ne 0 ]; do
    case $1 in
        -minimal) start_option=minimal ;;
        -sasl)    start_option=sasl ;;
        -cross)   cross=yes ;;
        *)        ERL_ROOT="$1" ;;
    esac
    shift
done
ERTS_VSN=%s
REL=%s
echo "would install into $ERL_ROOT" >&2
exit 1
"""
# The templates a `make release` tree carries in erts-<V>/bin (erts/etc/unix/*.src.src with the
# build's values in and %FINAL_ROOTDIR% / %EMU% left for Install), written here, not read off a host.
SCRIPT_TEMPLATES = {
    "erl.src": ERL_SCRIPT.replace("@ROOT@", "%FINAL_ROOTDIR%"),
    "start.src": """#!/bin/sh
ROOTDIR="%FINAL_ROOTDIR%"
if [ -z "$RELDIR" ]
then
   RELDIR=$ROOTDIR/releases
fi
START_ERL_DATA=${1:-$RELDIR/start_erl.data}
$ROOTDIR/bin/run_erl -daemon /tmp/ $ROOTDIR/log "exec $ROOTDIR/bin/start_erl $ROOTDIR $RELDIR $START_ERL_DATA"
""",
    "start_erl.src": """#!/bin/sh
ROOTDIR=$1
shift
RELDIR=$1
shift
DataFile=$1
shift
ERTS_VSN=`awk '{print $1}' $DataFile`
VSN=`awk '{print $2}' $DataFile`
BINDIR=$ROOTDIR/erts-$ERTS_VSN/bin
EMU=%EMU%
PROGNAME=`echo $0 | sed 's/.*\\///'`
export EMU ROOTDIR BINDIR PROGNAME RELDIR
exec $BINDIR/erlexec -boot $RELDIR/$VSN/start -config $RELDIR/$VSN/sys ${1+"$@"}
""",
}


def erts_name(tree: Path) -> str:
    return next(tree.glob("erts-*")).name


def retag(tree: Path, version: str) -> None:
    """Make `tree` say it is OTP `version` (releases/<major>/OTP_VERSION)."""
    for old in (tree / "releases").glob("*/OTP_VERSION"):
        shutil.rmtree(old.parent)
    rel = tree / "releases" / version.split(".")[0]
    rel.mkdir(parents=True)
    (rel / "OTP_VERSION").write_text(version + "\n")


def _host_release_dir() -> Path:
    """The host OTP's boot files (start_clean.boot, ...), from the installation `erl` runs."""
    return host_erlang().root / "releases" / host_erlang().otp_release


def _app_versions(tree: Path, names: tuple[str, ...]) -> list[tuple[str, str]]:
    found = {d.name.rsplit("-", 1)[0]: d.name.rsplit("-", 1)[1] for d in (tree / "lib").iterdir()}
    return [(n, found[n]) for n in names if n in found]


def hex_uninstalled(installed: Path, dest: Path, version: str, target: str) -> Path:
    """The tree hex's tarball holds: `make release` output that `Install` has not touched."""
    shutil.copytree(installed, dest, symlinks=True)
    retag(dest, version)
    shutil.rmtree(dest / "bin", ignore_errors=True)
    (dest / "releases" / "start_erl.data").unlink(missing_ok=True)
    erts = erts_name(dest)
    vsn = erts.split("-", 1)[1]
    bindir = dest / erts / "bin"
    for template, text in SCRIPT_TEMPLATES.items():  # %FINAL_ROOTDIR% kept for Install
        (bindir / template).write_text(text.replace("@VSN@", vsn))
    exe, _lib = stub_binaries(target)
    # dyn_erl is left out: the real one prints the root, these stubs print nothing
    for name in ("run_erl", "to_erl", "ct_run", "dialyzer", "typer", "erl_call"):
        shutil.copy2(exe, bindir / name)
    rel = dest / "releases" / version.split(".")[0]
    for name in BOOT_FILES:
        for suffix in ("boot", "script", "rel"):
            src = _host_release_dir() / f"{name}.{suffix}"
            if src.is_file():
                shutil.copy2(src, rel / src.name)
    apps = ",\n           ".join(f'{{{n},"{v}","%ERL_ROOT%/lib/{n}-{v}"}}'
                                 for n, v in _app_versions(dest, ("kernel", "stdlib", "sasl")))
    (dest / "releases" / "RELEASES.src").write_text(
        f'%% coding: utf-8\n[{{release,"Erlang/OTP","{rel.name}","{vsn}",\n          [{apps}],\n'
        "          permanent}].\n")
    (dest / "Install").write_text(INSTALL_SH % (vsn, rel.name))
    (dest / "Install").chmod(0o755)
    (dest / "misc").mkdir(exist_ok=True)
    (dest / "misc" / "format_man_pages").write_text("#!/bin/sh\nexit 0\n")
    return dest


def otp_builds_installed(installed: Path, dest: Path, version: str, triple: str) -> Path:
    """An erlef/otp_builds tree: installed with -sasl at /tmp/otp-<triple>, Install removed."""
    shutil.copytree(installed, dest, symlinks=True)
    retag(dest, version)
    ci_root = f"/tmp/otp-{triple}"
    erl = (dest / "bin" / "erl").read_text().replace("/opt/otp-build-root", ci_root)
    for where in (dest / "bin" / "erl", dest / erts_name(dest) / "bin" / "erl"):
        where.write_text(erl)
        where.chmod(0o755)
    rel = dest / "releases" / version.split(".")[0]
    for suffix in ("boot", "script"):
        shutil.copy2(_host_release_dir() / f"start_sasl.{suffix}", dest / "bin" / f"start.{suffix}")
    shutil.copy2(_host_release_dir() / "start_sasl.boot", rel / "start_sasl.boot")
    return dest


def _pe32_stub(out: Path) -> Path:
    """A real 32-bit x86 PE executable (what NSIS and the VC++ redistributable's bootstrapper are)."""
    src = out.with_suffix(".c")
    src.write_text("void __stdcall entry(void) {}\n")
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "x86-windows-gnu", "-nostdlib",
                    "-Wl,--entry=entry", str(src), "-o", str(out)], check=True)
    src.unlink()
    return out


def windows_installed(installed: Path, dest: Path, version: str) -> Path:
    """What the NSIS installer lays down and upload-windows-zip.yaml zips (27.1-27.2 style)."""
    shutil.copytree(installed, dest, symlinks=True)
    retag(dest, version)
    exe, dll = stub_binaries("x86_64-windows")
    erts = erts_name(dest)
    bindir = dest / erts / "bin"
    for name in ("beam.smp", "erlexec"):
        (bindir / f"{name}.exe").unlink(missing_ok=True)
        shutil.copy2(dll, bindir / f"{name}.dll")
    for name in ("erl", "werl", "erlsrv", "start_erl", "erl_call"):
        shutil.copy2(exe, bindir / f"{name}.exe")
    ci_path = f"D:\\\\a\\\\otp\\\\otp\\\\otp_win64_{version}"
    ini = f"[erlang]\nBindir={ci_path}\\\\{erts}\\\\bin\nProgname=erl\nRootdir={ci_path}\n"
    (bindir / "erl.ini").write_text(ini)
    top = dest / "bin"
    top.mkdir(exist_ok=True)
    for name in ("erl", "werl", "erlc", "dialyzer", "typer", "escript", "ct_run"):
        shutil.copy2(exe, top / f"{name}.exe")
    for name in ("start_clean", "start_sasl", "no_dot_erlang"):
        shutil.copy2(_host_release_dir() / f"{name}.boot", top / f"{name}.boot")
    shutil.copy2(_host_release_dir() / "start_clean.boot", top / "start.boot")
    (top / "erl.ini").write_text(ini)
    shutil.copy2(exe, dest / "Install.exe")
    (dest / "Install.ini").write_text(f"[Install]\nVSN={erts.split('-', 1)[1]}\nSYSTEM_VSN={version.split('.')[0]}\n")
    _pe32_stub(dest / "Uninstall.exe")
    _pe32_stub(dest / "vc_redist.exe")
    (dest / "INSTALL.txt").write_text("Run vc_redist.exe, then bin\\erl.exe.\n")
    (dest / "installer.sha256").write_text("ab" * 32 + "\n")
    return dest


# -- archives -----------------------------------------------------------------------------------

def tar_gz(tree: Path, top: str | None = None, extra: list[tarfile.TarInfo] | None = None) -> bytes:
    """A .tar.gz of `tree` (under `top`/ when given, else `./`), plus any extra raw members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        tar.add(tree, arcname=top or ".")
        for member in extra or []:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isreg() else None)
    return buf.getvalue()


def zip_bytes(tree: Path) -> bytes:
    """A zip with no top folder, as PowerShell's Compress-Archive -Path * makes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for dirpath, _dirs, files in os.walk(tree):
            for name in sorted(files):
                path = Path(dirpath, name)
                zf.write(path, str(path.relative_to(tree)))
    return buf.getvalue()


def builds_txt(lines: list[tuple[str, str | None]]) -> str:
    """builds.txt as bob writes it: a leading blank line (old generator), `name sha date [sha256]`
    sorted by name, plus maint/master branch lines."""
    rows = [f"OTP-{v} {'a' * 40} 2024-10-01T12:00:00Z" + (f" {h}" if h else "") for v, h in lines]
    rows += [f"maint {'b' * 40} 2026-01-02T03:04:05Z {'c' * 64}", f"master {'d' * 40} 2026-01-02T03:04:05Z"]
    return "\n" + "\n".join(sorted(rows)) + "\n"


def checksums_csv(lines: list[tuple[str, str]]) -> str:
    """builds/<triple>.csv: header, then rows sorted in reverse (as update_builds.bash keeps it)."""
    rows = [f"OTP-{v},{'e' * 40},2024-10-23T21:02:30Z,{h},openssl-3.1.6,wxwidgets-3.2.6" for v, h in lines]
    rows.append(f"maint,{'f' * 40},2026-01-02T03:04:05Z,{'0' * 64},openssl-3.5.7,wxwidgets-3.2.10")
    return "ref_name,ref,datetime,sha256,openssl,wxwidgets\n" + "\n".join(sorted(rows, reverse=True)) + "\n"


def hostile_member(kind: str) -> tarfile.TarInfo:
    """A tar member that must be refused: `..`, an absolute path, an escaping link, a device."""
    if kind == "dotdot":
        info = tarfile.TarInfo("OTP-27.3/../../evil")
        info.size = 1
    elif kind == "absolute":
        info = tarfile.TarInfo("/tmp/xrel-evil")
        info.size = 1
    elif kind == "symlink":
        info = tarfile.TarInfo("OTP-27.3/lib/escape")
        info.type, info.linkname = tarfile.SYMTYPE, "../../../../../etc"
    else:
        info = tarfile.TarInfo("OTP-27.3/dev-null")
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info
