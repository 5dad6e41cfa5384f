"""Turn an unpacked runtime into xrel's normalized OTP root and describe it in xrel-runtime.json."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from xrel.errors import NotAvailableError, VerificationError
from xrel.runtimes.base import METADATA
from xrel.runtimes.versions import nif_version
from xrel.storage.cache import remove
from xrel.targets import Target
from xrel.versions import release, version_key

_ROOTDIR_LINE = re.compile(r'^(\s*)ROOTDIR="?(/[^"\n]*)"?\s*$', re.MULTILINE)


def erts_dir(root: Path) -> Path:
    found = sorted(d for d in root.glob("erts-*") if (d / "bin").is_dir())
    if len(found) != 1:
        raise VerificationError(
            f"runtime at {root} has {len(found)} erts-<version>/bin directories, expected one",
            "the archive is not an OTP installation",
        )
    return found[0]


def root_from_script(depth: int) -> str:
    """Shell code for the OTP root as seen from a script `depth` directories below it."""
    up = "/".join([".."] * depth)
    return f'$(cd "$(dirname "$0")/{up}" && pwd -P)'


def relocate_scripts(root: Path) -> list[str]:
    """Replace hard-coded `ROOTDIR=/abs/path` lines in shell scripts with one computed from the
    script's own location, so the runtime's own `erl` runs where it is (never the host's VM)."""
    changed = []
    for bindir in [root / "bin", *root.glob("erts-*/bin")]:
        if not bindir.is_dir():
            continue
        depth = len(bindir.relative_to(root).parts)
        for script in bindir.iterdir():
            if script.is_symlink() or not script.is_file():
                continue
            with open(script, "rb") as f:
                if f.read(2) != b"#!":
                    continue
            text = script.read_text(errors="surrogateescape")
            replacement = rf'\1ROOTDIR="{root_from_script(depth)}"'
            new, n = _ROOTDIR_LINE.subn(replacement, text)
            if n:
                script.write_text(new, errors="surrogateescape")
                changed.append(str(script.relative_to(root)))
    return changed


def ensure_usr_dirs(root: Path, erts: Path) -> None:
    """`<root>/usr/include` and `<root>/usr/lib` as an installed OTP has them (elixir_make's
    ERL_EI_* defaults); filled from erts-V/include and erl_interface when missing."""
    include = root / "usr" / "include"
    lib = root / "usr" / "lib"
    include.mkdir(parents=True, exist_ok=True)
    lib.mkdir(parents=True, exist_ok=True)
    sources = [erts / "include"]
    ei = sorted((root / "lib").glob("erl_interface-*"))
    if ei:
        sources.append(ei[-1] / "include")
    for source in sources:
        for header in source.glob("*.h") if source.is_dir() else []:
            if not (include / header.name).exists():
                shutil.copy2(header, include / header.name)
    for archive in (ei[-1] / "lib").glob("*.a") if ei else []:
        if not (lib / archive.name).exists():
            shutil.copy2(archive, lib / archive.name)


def complete_apps(root: Path) -> list[str]:
    """`<app>-<vsn>` of every application with an .app file (not just headers) in the root."""
    return sorted(d.name for d in (root / "lib").glob("*-*")
                  if (d / "ebin" / f"{d.name.rsplit('-', 1)[0]}.app").is_file())


def otp_version(root: Path, fallback: str | None = None) -> str | None:
    """The full OTP version in `root`'s releases/<major>/OTP_VERSION (the newest, if several)."""
    found = sorted(root.glob("releases/*/OTP_VERSION"), key=lambda p: version_key(p.parent.name))
    return found[-1].read_text().strip() if found else fallback


def _nif_version(erts: Path, otp: str) -> str:
    header = erts / "include" / "erl_nif.h"
    if header.is_file():
        text = header.read_text(errors="replace")
        major = re.search(r"#define\s+ERL_NIF_MAJOR_VERSION\s+(\d+)", text)
        minor = re.search(r"#define\s+ERL_NIF_MINOR_VERSION\s+(\d+)", text)
        if major and minor:
            return f"{major.group(1)}.{minor.group(1)}"
    return nif_version(release(otp)[0])


def finalize(root: Path, target: Target, source: str, version: str, provenance: dict) -> dict:
    """Normalize `root` in place, verify its native files, write and return its metadata."""
    erts = erts_dir(root)
    if not (erts / "include" / "erl_nif.h").is_file():
        raise VerificationError(f"runtime from {source} has no NIF headers ({erts.name}/include/erl_nif.h)",
                                "it cannot build NIFs for the target; use another --source")
    relocated = relocate_scripts(root)
    ensure_usr_dirs(root, erts)
    otp = otp_version(root, version)
    major = release(otp)[0]
    rel = root / "releases" / str(major)
    if not (rel / "OTP_VERSION").exists():
        rel.mkdir(parents=True, exist_ok=True)
        (rel / "OTP_VERSION").write_text(otp + "\n")
    from xrel.inspection.check import inspect_tree  # elftools: only when a runtime is installed

    report = inspect_tree(root, target)
    report.raise_for_problems(f"the {source} runtime OTP {otp}")
    meta = {
        "target": target.name,
        "otp_version": otp,
        "otp_major": major,
        "erts_version": erts.name.split("-", 1)[1],
        "nif_version": _nif_version(erts, otp),
        "source": source,
        "glibc_floor": report.glibc_floor,
        "macos_min": report.macos_min,
        "needed_libraries": report.needed,
        "apps": complete_apps(root),
        "relocated_scripts": relocated,
        "native_files": [{"path": f.path, **f.info} for f in report.files],
        **provenance,
    }
    (root / METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def move_contents(src: Path, dest: Path) -> None:
    """Move everything inside `src` into `dest`."""
    for child in src.iterdir():
        os.replace(child, dest / child.name)


def adopt_system_root(unpacked: Path, dest: Path, what: str) -> None:
    """Make the /usr/lib/erlang of system packages unpacked under `unpacked` the OTP root `dest`,
    then delete the rest of `unpacked` (their /usr/bin links and the like)."""
    otp_root = unpacked / "usr" / "lib" / "erlang"
    if not (otp_root / "lib").is_dir():
        raise NotAvailableError(f"{what} hold no /usr/lib/erlang tree")
    move_contents(otp_root, dest)
    remove(unpacked)
