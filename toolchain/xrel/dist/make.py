"""`xrel dist`: build every target, then put dist/<version>/ together (the build's own reproducible
tarballs, SHA256SUMS, xrel-manifest.json, their signatures) in a staging dir beside it and rename it
into place."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from xrel import progress
from xrel.dist.layout import MANIFEST, SIGNED, SUMS, refuse_cookie, signature_name, sums_text
from xrel.dist.manifest import build_manifest, manifest_text, target_entry
from xrel.errors import UsageError
from xrel.release import assemble, tarball
from xrel.release.results import BuildResult, TargetResult
from xrel.storage.files import atomic_write, same_bytes, sha256_file


@dataclass
class DistResult:
    directory: str
    app: str
    version: str
    files: list[str]
    signed: bool
    unchanged: bool = False  # an identical dist/<version>/ was already there
    checked: bool = False  # --check rebuilt it and got the same bytes
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def signing_key():
    """The key of XREL_SIGNING_KEY, or None when unset (or when this xrel has no signing module)."""
    try:
        from xrel.signing import signing_key_from_env
    except ImportError:
        return None
    return signing_key_from_env()


def stage_tarball(result: TargetResult, release: str, version: str, staging: Path, epoch: int) -> dict:
    """The build's own tarball of one target, linked into `staging` under its dist name; its manifest entry.
    The build wrote it reproducibly; it is written again only if made with another epoch (an up-to-date
    build of a later commit) or if its release changed since."""
    name = assemble.tarball_name(release, version, int(result.otp_version.split(".")[0]), result.target)
    built, staged = Path(result.tarball), staging / name
    tarball.write_tarball(Path(result.release_dir), built, epoch)
    try:
        os.link(built, staged)
    except OSError:  # another file system
        shutil.copyfile(built, staged)
    refuse_cookie(staged)
    return target_entry(result, name, staged.stat().st_size, sha256_file(staged))


def write_dist(built: BuildResult, project: Path, staging: Path, epoch: int, upgrade_from=None,
               notes: list[str] | None = None) -> dict:
    """Tarballs, upgrade packages (from `upgrade_from`, an xrel.upgrade FromSource), manifest and SHA256SUMS
    of `built` into `staging`; returns the manifest. Why a target has no package goes to `notes`."""
    staging.mkdir(parents=True)
    with progress.step("dist tarballs"), ThreadPoolExecutor(max_workers=max(1, len(built.targets))) as pool:
        entries = list(pool.map(lambda r: stage_tarball(r, built.release, built.version, staging, epoch),
                                built.targets))
    if upgrade_from is not None:
        from xrel.dist.upgrades import target_upgrades

        found = [] if notes is None else notes
        with progress.step("upgrade packages"), ThreadPoolExecutor(max_workers=max(1, len(built.targets))) as pool:
            upgrades = list(pool.map(lambda r: target_upgrades(r, built.release, upgrade_from, staging, epoch, found),
                                     built.targets))
        for entry, packages in zip(entries, upgrades):
            entry["upgrades"] = packages
    manifest = build_manifest(built, project, entries, epoch)
    atomic_write(staging / MANIFEST, manifest_text(manifest), 0o644)
    sums = {e["file"]: e["sha256"] for e in entries}
    sums.update({u["file"]: u["sha256"] for e in entries for u in e["upgrades"]})
    sums[MANIFEST] = sha256_file(staging / MANIFEST)
    atomic_write(staging / SUMS, sums_text(sums), 0o644)
    return manifest


def sign_dist(staging: Path, key, app: str, version: str) -> None:
    """Sign SHA256SUMS and the manifest; the trusted comment names app, version and file (no timestamp,
    so the same key signs the same dist to the same bytes: Ed25519 signatures are deterministic)."""
    from xrel.signing import sign_file

    for name, what in ((SUMS, "sha256sums"), (MANIFEST, "manifest")):
        sign_file(staging / name, key, f"xrel dist {app} {version} {what}")


def differing(a: Path, b: Path) -> list[str]:
    """Files that are not byte-identical in both directories (or only in one)."""
    names = sorted({p.name for p in a.iterdir()} | {p.name for p in b.iterdir()})
    return [n for n in names if not ((a / n).is_file() and (b / n).is_file()
                                     and same_bytes(a / n, b / n))]


def place(staging: Path, final: Path, force: bool) -> bool:
    """Rename `staging` to `final`; True when an identical `final` was already there (kept as it is)."""
    if final.exists():
        changed = differing(staging, final)
        if not changed:
            shutil.rmtree(staging)
            return True
        if not force:
            raise UsageError(f"{final} already exists with other content ({', '.join(changed[:3])} differ)",
                             "bump the version, or pass --force to replace it")
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
        return False
    os.replace(staging, final)
    return False


def make_dist(project_dir: str | Path = ".", targets: str | Sequence[str] = (), *, otp: str | None = None,
              source: str | None = None, locked: bool = False, offline: bool = False,
              dist_dir: str | Path | None = None, force: bool = False, check: bool = False,
              upgrade_from: str | None = None) -> DistResult:
    """Build the project's targets (default: xrel.toml's) into `<dist_dir>/<version>/` (default: dist/), with
    upgrade packages from `upgrade_from` (a version, a path, "none"; default: [publish]'s latest version)."""
    from xrel.release.build import build
    from xrel.upgrade.source import check_spec, resolve

    started = time.monotonic()
    check_spec(upgrade_from)
    project = Path(project_dir).resolve()
    key = signing_key()  # a broken key fails before anything builds
    epoch = tarball.source_date_epoch(project)
    build_args = {"project_dir": project, "targets": targets, "otp": otp, "source": source,
                  "locked": locked, "offline": offline, "tarball": True}
    built = build(**build_args)
    root = Path(dist_dir).resolve() if dist_dir else project / "dist"
    root.mkdir(parents=True, exist_ok=True)
    final = root / built.version
    staging = root / f".{built.version}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    notes = [] if key else ["not signed: XREL_SIGNING_KEY is not set (`xrel keygen` makes a key)"]
    source = resolve(upgrade_from, project, root, built.version)
    notes += source.notes if source else []
    try:
        write_dist(built, project, staging, epoch, source, notes)
        if key:
            sign_dist(staging, key, built.project, built.version)
        if check:
            from xrel.dist.check import rebuild_and_compare

            rebuild_and_compare(build_args, project, staging, epoch, source)
        files = sorted(p.name for p in staging.iterdir())
        unchanged = place(staging, final, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DistResult(str(final), built.project, built.version, files, bool(key), unchanged, check, notes,
                      round(time.monotonic() - started, 2))


__all__ = ["DistResult", "SIGNED", "make_dist", "signature_name"]
