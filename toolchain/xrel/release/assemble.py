"""Finish an assembled release for its target, then package it: tarball, sha256, manifest."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from xrel.inspection import binaries
from xrel.release.marker import ReleaseMarker
from xrel.release.tarball import tarball_sidecars
from xrel.release.target_build import TargetBuild
from xrel.runtimes import Runtime
from xrel.storage.files import atomic_write
from xrel.targets import Target

WINDOWS_LEFTOVERS = (".pdb", ".lib", ".exp", ".ilk")


def fix_windows_names(release_dir: Path) -> list[str]:
    """Windows: NIFs/drivers as .dll and port programs as .exe (what load_nif, erl_ddll and
    Port.open look for); linker leftovers removed from priv/."""
    changes = []
    for priv in release_dir.glob("lib/*/priv"):
        for path in sorted(p for p in priv.rglob("*") if p.is_file() and not p.is_symlink()):
            if path.suffix.lower() in WINDOWS_LEFTOVERS:
                path.unlink()
                changes.append(f"removed {path.relative_to(release_dir)}")
                continue
            if binaries.sniff(path) != "pe":
                continue
            info = binaries.read(path)
            wanted = ".dll" if info.kind == "shared" else ".exe"
            if path.suffix.lower() != wanted:
                new = path.with_name((path.stem if path.suffix.lower() in (".so", ".dylib") else path.name) + wanted)
                os.replace(path, new)
                changes.append(f"renamed {path.relative_to(release_dir)} -> {new.name}")
    return changes


def restore_otp_beams(release_dir: Path, runtime: Runtime) -> list[str]:
    """Put the target runtime's own OTP .beam files back (mix strips them with the host's
    beam_lib, which drops chunks a newer OTP needs)."""
    restored = []
    for app_dir in release_dir.glob("lib/*-*"):
        source = runtime.root / "lib" / app_dir.name / "ebin"
        if source.is_dir():
            shutil.rmtree(app_dir / "ebin")
            shutil.copytree(source, app_dir / "ebin")
            restored.append(app_dir.name)
    return restored


def tarball_name(release: str, version: str, otp_major: int, target_id: str) -> str:
    """`myapp-1.2.0-otp27-aarch64-linux-gnu.tar.gz`: sorts by release and version, greps by OTP and target."""
    return f"{release}-{version}-otp{otp_major}-{target_id}.tar.gz"


def link_old_name(tarball: Path, old: Path) -> None:
    """Keep the name xrel used before versions were in names (`<release>-<vsn>-<target>.tar.gz`)
    reachable: a relative symlink to the tarball, and one for its .sha256."""
    sums = (tarball_sidecars(old)[0], tarball_sidecars(tarball)[0])
    for link, dest in ((old, tarball), sums):
        if link.is_symlink() and os.readlink(link) == dest.name:
            continue
        tmp = link.with_name(f".{link.name}.{os.getpid()}.link")
        tmp.unlink(missing_ok=True)
        os.symlink(dest.name, tmp)
        os.replace(tmp, link)


def update_manifest(out: Path, project: str, release: str, version: str, entries: list[dict]) -> Path:
    """`<out>/manifest.json`: one entry per target, newest build wins."""
    from xrel import __version__

    path = out / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("release") != release or manifest.get("version") != version:
            manifest = {}
    except (OSError, ValueError):
        manifest = {}
    artifacts = {a["target"]: a for a in manifest.get("artifacts", [])}
    for entry in entries:
        artifacts[entry["target"]] = entry
    manifest = {
        "project": project,
        "release": release,
        "version": version,
        "xrel": __version__,
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "artifacts": [artifacts[k] for k in sorted(artifacts)],
    }
    atomic_write(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n", 0o644)
    return path


def finish_release(release_dir: Path, build: TargetBuild) -> list[str]:
    """What mix cannot do for a cross target: Windows file names, the target's own OTP beams,
    xrel's marker; and a note when the user's config left ERTS out."""
    target, runtime = build.target, build.runtime
    notes = []
    if target.os == "windows":
        notes += fix_windows_names(release_dir)
    if runtime.otp_major != build.host.otp_major:
        restored = restore_otp_beams(release_dir, runtime)
        notes.append(f"restored the target's own beams for {len(restored)} OTP apps")
    release_marker(release_dir, target, runtime)
    try:
        info = json.loads(build.release_info.read_text())
    except (OSError, ValueError):
        info = {}
    if info and info.get("erts_source") is None:
        notes.append(f"include_erts: false in mix.exs: the release has no ERTS; {target.name} must provide "
                     f"OTP {runtime.otp_version} (erts {runtime.erts_version}) itself")
    return notes


def release_version(release_dir: Path) -> str:
    """The release's version, from releases/start_erl.data."""
    data = (release_dir / "releases" / "start_erl.data").read_text().split()
    return data[1] if len(data) > 1 else "0"


def release_marker(release_dir: Path, target: Target, runtime: Runtime) -> None:
    """`releases/xrel.json` in the release: what `xrel run`, `inspect` and `smoke` read to know the target."""
    ReleaseMarker(target.id, runtime.otp_version, runtime.erts_version, runtime.nif_version, runtime.source,
                  {k: runtime.meta.get(k) for k in ("suite", "debian_version", "glibc_floor")}).write(release_dir)
