"""`xrel dist`: build every target, then write dist/<version>/ (tarballs without COOKIE, SHA256SUMS,
xrel-manifest.json, their signatures) reproducibly in a staging dir beside it and rename it into place."""

from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xrel import progress
from xrel.dist.layout import COOKIE, MANIFEST, SIGNED, SUMS, refuse_cookie, signature_name, sums_text
from xrel.dist.manifest import build_manifest, manifest_text, source_date_epoch, target_entry
from xrel.errors import UsageError, VerificationError
from xrel.release import assemble
from xrel.release.results import BuildResult
from xrel.storage.download import sha256_file
from xrel.storage.files import atomic_write


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


def write_dist(built: BuildResult, project: Path, staging: Path, epoch: int) -> dict:
    """Tarballs, manifest and SHA256SUMS of `built` into `staging`; returns the manifest."""
    staging.mkdir(parents=True)
    entries, sums = [], {}
    for result in built.targets:
        otp_major = int(result.otp_version.split(".")[0])
        name = assemble.tarball_name(built.release, built.version, otp_major, result.target)
        with progress.step(f"[{result.target}] dist tarball"):
            sha = assemble.reproducible_tarball(Path(result.release_dir), staging / name, epoch, frozenset({COOKIE}))
        refuse_cookie(staging / name)
        entries.append(target_entry(result, name, (staging / name).stat().st_size, sha))
        sums[name] = sha
    manifest = build_manifest(built, project, entries, epoch)
    atomic_write(staging / MANIFEST, manifest_text(manifest), 0o644)
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
                                     and filecmp.cmp(a / n, b / n, shallow=False))]


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


def rebuild_and_compare(build_args: dict, project: Path, staging: Path, epoch: int) -> None:
    """--check: assemble every release again (`mix release` into a scratch out dir) and compare the
    tarballs and manifest byte for byte with `staging`'s."""
    from xrel.release.build import build

    with tempfile.TemporaryDirectory(prefix="xrel-dist-check-", dir=staging.parent) as scratch:
        again = build(**build_args, out=Path(scratch) / "out")
        write_dist(again, project, Path(scratch) / "dist", epoch)
        changed = [n for n in differing(staging, Path(scratch) / "dist") if not n.endswith(".minisig")]
    if changed:
        raise VerificationError(f"not reproducible: a rebuild gave other bytes for {', '.join(changed)}",
                                "look for build-time data in the release (paths, dates) and report it")


def make_dist(project_dir: str | Path = ".", targets: str | Sequence[str] = (), *, otp: str | None = None,
              source: str | None = None, locked: bool = False, offline: bool = False,
              dist_dir: str | Path | None = None, force: bool = False, check: bool = False) -> DistResult:
    """Build the project's targets (default: xrel.toml's) into `<dist_dir>/<version>/` (default: dist/)."""
    from xrel.release.build import build

    started = time.monotonic()
    project = Path(project_dir).resolve()
    key = signing_key()  # a broken key fails before anything builds
    epoch = source_date_epoch(project)
    build_args = {"project_dir": project, "targets": targets, "otp": otp, "source": source,
                  "locked": locked, "offline": offline}
    built = build(**build_args)
    root = Path(dist_dir).resolve() if dist_dir else project / "dist"
    root.mkdir(parents=True, exist_ok=True)
    final = root / built.version
    staging = root / f".{built.version}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    notes = [] if key else ["not signed: XREL_SIGNING_KEY is not set (`xrel keygen` makes a key)"]
    try:
        write_dist(built, project, staging, epoch)
        if key:
            sign_dist(staging, key, built.project, built.version)
        if check:
            rebuild_and_compare(build_args, project, staging, epoch)
        files = sorted(p.name for p in staging.iterdir())
        unchanged = place(staging, final, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DistResult(str(final), built.project, built.version, files, bool(key), unchanged, check, notes,
                      round(time.monotonic() - started, 2))


__all__ = ["DistResult", "SIGNED", "make_dist", "signature_name"]
