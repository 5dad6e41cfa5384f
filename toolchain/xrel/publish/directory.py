"""`xrel publish dir:PATH`: a dist dir laid out for any web server, CDN or object-store sync.

    PATH/<version>/        every file of the dist dir; written into a staging dir, then renamed (never changes)
    PATH/latest/xrel-manifest.json (+ .minisig)   byte-identical copies of the newest version's, each replaced
                                                  by a rename once PATH/<version>/ is complete

A reader never finds a manifest whose files are not all there. Nodes read latest/xrel-manifest.json to learn
the version, then fetch <version>/xrel-manifest.json and its .minisig from the immutable per-version location.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from xrel import progress
from xrel.errors import UsageError, VerificationError
from xrel.publish.destination import DirDestination
from xrel.publish.dist import MANIFEST, Dist, DistFile
from xrel.storage.files import atomic_write, sha256_file
from xrel.storage.locks import hold

LATEST = "latest"
STAGING = ".xrel-staging-"
LOCK = ".xrel-publish.lock"
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(file: DistFile, target: Path) -> None:
    """Copy with a progress bar, fsync, and check the copy's sha256 against the manifest's."""
    digest = hashlib.sha256()
    with open(file.path, "rb") as src, open(target, "wb") as dst, progress.bar(file.size, file.name) as bar:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
        dst.flush()
        os.fsync(dst.fileno())
    os.chmod(target, 0o644)
    if digest.hexdigest() != file.sha256:
        raise VerificationError(f"{file.path} changed while it was copied", "re-run xrel publish")


def _same_version(version_dir: Path, dist: Dist) -> bool:
    """True when the published version dir holds exactly this dist's files (a re-run); False for a different build."""
    return all((version_dir / f.name).is_file() and sha256_file(version_dir / f.name) == f.sha256 for f in dist.files)


def _write_version(root: Path, dist: Dist) -> str:
    """PATH/<version>/ written whole or not at all: 'written', or 'kept' when it already holds this dist."""
    version_dir = root / dist.version
    if version_dir.exists():
        if _same_version(version_dir, dist):
            return "kept"
        raise UsageError(f"{version_dir} already holds a different {dist.version}",
                         "publish a new version (a published version never changes)")
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING}{dist.version}-", dir=root))
    try:
        for file in dist.files:
            _copy(file, staging / file.name)
        os.chmod(staging, 0o755)
        _fsync_dir(staging)
        os.rename(staging, version_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(root)
    return "written"


def _version_key(version: str):
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version)
    except InvalidVersion:
        return None


def _latest_version(root: Path) -> str | None:
    import json

    try:
        return json.loads((root / LATEST / MANIFEST).read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        return None


def _update_latest(root: Path, dist: Dist) -> bool:
    """Point latest/ at this version unless it already names a newer one; True when it now names this one."""
    current = _latest_version(root)
    new_key, old_key = _version_key(dist.version), _version_key(current) if current else None
    if new_key is not None and old_key is not None and old_key > new_key:
        progress.note(f"{root / LATEST} stays at {current} (newer than {dist.version})")
        return False
    latest, source = root / LATEST, root / dist.version
    signature = f"{MANIFEST}.minisig"
    if (source / signature).is_file():
        atomic_write(latest / signature, (source / signature).read_bytes(), 0o644)
    else:
        (latest / signature).unlink(missing_ok=True)
    atomic_write(latest / MANIFEST, (source / MANIFEST).read_bytes(), 0o644)
    _fsync_dir(latest)
    return True


def _clean_staging(root: Path) -> None:
    """Staging dirs a killed run left behind (the lock is held: no live run owns one)."""
    for stale in root.glob(f"{STAGING}*"):
        shutil.rmtree(stale, ignore_errors=True)


def publish_dir(dist: Dist, dest: DirDestination) -> dict:
    """Publish `dist` under `dest.path`; safe to re-run, and to run from several machines on one share."""
    if not _VERSION.match(dist.version) or dist.version == LATEST:
        raise VerificationError(f"version {dist.version!r} cannot name a directory", "use a plain version like 1.2.3")
    root = dest.path
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is not a directory", "choose a directory for dir:PATH")
    root.mkdir(parents=True, exist_ok=True)
    with hold(root / LOCK):
        _clean_staging(root)
        state = _write_version(root, dist)
        latest = _update_latest(root, dist)
    return {"destination": str(dest), "version": dist.version, "path": str(root / dist.version), "state": state,
            "latest": latest, "files": dist.names}
