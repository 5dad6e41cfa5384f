"""OTP's `Install -minimal <root>` (erts/etc/unix/Install.src), done in Python.

A `make release` tree, as the hex builds tarballs are, is not installed yet: it has
`erts-<V>/bin/erl.src` but no `erl`, no top-level `bin/`, no `releases/RELEASES`. This module
makes what the script makes, with one difference: `%FINAL_ROOTDIR%` becomes shell code that
finds the root from the script's own location, so the tree works wherever it is put and never
names a host path. `Install` itself is removed afterwards (as erlef/otp_builds does), so nothing
can re-run it with an absolute root.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from xrel.errors import VerificationError
from xrel.runtimes.normalize import erts_dir, root_from_script

# Programs Install copies from erts-<V>/bin to bin/ (a missing one is skipped, as the script,
# which has no `set -e`, does).
BIN_COPIES = ("erlc", "erl_call", "dialyzer", "typer", "ct_run", "escript", "run_erl", "to_erl")
# Scripts generated from erts-<V>/bin/<name>.src, in erts-<V>/bin and in bin/.
GENERATED = ("erl", "start")
EMULATOR = "beam"


def is_uninstalled(root: Path) -> bool:
    """True for a `make release` tree that `Install` has not been run on."""
    bindir = erts_dir(root) / "bin"
    return (bindir / "erl.src").is_file() and not (bindir / "erl").exists()


def _substitute(text: str, values: dict[str, str]) -> str:
    """Replace the first occurrence of each placeholder per line (Install uses `sed s;..;..;`)."""
    lines = []
    for line in text.splitlines(keepends=True):
        for placeholder, value in values.items():
            line = line.replace(placeholder, value, 1)
        lines.append(line)
    return "".join(lines)


def _write_from(template: Path, dest: Path, values: dict[str, str]) -> None:
    dest.write_text(_substitute(template.read_text(errors="surrogateescape"), values), errors="surrogateescape")
    dest.chmod(0o755)


def _release_dir(root: Path) -> Path:
    found = sorted(d for d in (root / "releases").glob("*") if (d / "OTP_VERSION").is_file())
    if len(found) != 1:
        raise VerificationError(f"uninstalled OTP tree at {root} has {len(found)} releases/<major>/OTP_VERSION "
                                "files, expected one", "the archive is not an OTP release tree")
    return found[0]


def install_minimal(root: Path) -> list[str]:
    """Do what `Install -minimal` does to `root`; returns the files made (relative to it)."""
    erts = erts_dir(root)
    vsn = erts.name.split("-", 1)[1]
    release = _release_dir(root)
    ebin, bindir = erts / "bin", root / "bin"
    bindir.mkdir(exist_ok=True)
    made: list[Path] = []
    for name in GENERATED:
        template = ebin / f"{name}.src"
        if not template.is_file():
            continue
        for where, depth in ((ebin, 2), (bindir, 1)):
            _write_from(template, where / name, {"%FINAL_ROOTDIR%": root_from_script(depth), "%VSN%": vsn})
            made.append(where / name)
    for name in BIN_COPIES:
        if (ebin / name).is_file():
            shutil.copy2(ebin / name, bindir / name)
            made.append(bindir / name)
    epmd = bindir / "epmd"
    if epmd.is_symlink() or epmd.exists():
        epmd.unlink()
    os.symlink(f"../{erts.name}/bin/epmd", epmd)
    made.append(epmd)
    if (ebin / "start_erl.src").is_file():
        _write_from(ebin / "start_erl.src", bindir / "start_erl", {"%EMU%": EMULATOR})
        made.append(bindir / "start_erl")
    made += _write_releases(root, vsn, release)
    made += _copy_boot_files(release, bindir)
    (root / "Install").unlink(missing_ok=True)
    return sorted(str(p.relative_to(root)) for p in made)


def _write_releases(root: Path, vsn: str, release: Path) -> list[Path]:
    """releases/start_erl.data, and releases/RELEASES with paths relative to the root (OTP 25+
    Install strips `%ERL_ROOT%/`; release_handler prefixes code:root_dir() to relative paths)."""
    data = root / "releases" / "start_erl.data"
    data.write_text(f"{vsn} {release.name}\n")
    made = [data]
    template = root / "releases" / "RELEASES.src"
    if template.is_file():
        out = root / "releases" / "RELEASES"
        out.write_text(_substitute(template.read_text(), {"%ERL_ROOT%/": ""}))
        made.append(out)
    return made


def _copy_boot_files(release: Path, bindir: Path) -> list[Path]:
    """bin/start_*.boot, no_dot_erlang.boot; bin/start.boot and start.script are start_clean's."""
    made = []
    for boot in [*sorted(release.glob("start_*.boot")), release / "no_dot_erlang.boot"]:
        if boot.is_file():
            shutil.copy2(boot, bindir / boot.name)
            made.append(bindir / boot.name)
    for suffix in ("boot", "script"):
        clean = release / f"start_clean.{suffix}"
        if clean.is_file():
            shutil.copy2(clean, bindir / f"start.{suffix}")
            made.append(bindir / f"start.{suffix}")
    return made
