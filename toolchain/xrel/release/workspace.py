"""Per-target build trees: mirrored copies of the project and its path deps, kept in sync.

Each target builds in its own tree under the cache, which mirrors the absolute paths of the
project and of every dependency outside it (so relative path deps keep working). The user's
files are only ever read. Native binaries found in the user's copies of native code (host
builds of a NIF, objects) are not copied: the target rebuilds them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from xrel.inspection import binaries
from xrel.storage import cache
from xrel.storage.files import file_identity, write_if_changed

OBJECT_SUFFIXES = (".o", ".obj", ".a", ".lib", ".so", ".dll", ".dylib", ".pdb", ".exp", ".rlib", ".d")
MANIFEST = ".xrel-synced.json"
PROJECT_RECORD = "project.txt"  # in a project's folder of build trees: the project's directory


_SNIFFED: dict[str, bool] = {}  # file identity -> a native file by content (every target syncs the same files)


def _is_host_output(path: Path, st: os.stat_result) -> bool:
    """A build output of native code: an object/library by name, or any native file by content."""
    if path.name.endswith(OBJECT_SUFFIXES):
        return True
    ident = f"{path}\0{file_identity(st)}"
    if ident not in _SNIFFED:
        if len(_SNIFFED) > 100_000:
            _SNIFFED.clear()
        _SNIFFED[ident] = binaries.sniff(path) is not None
    return _SNIFFED[ident]


@dataclass
class SyncStats:
    copied: int = 0
    removed: int = 0
    skipped_binaries: int = 0
    digest: str = ""  # of every synced path with its size and mtime: equal digests, equal inputs
    native_digest: str = ""  # the same without the BEAM-only sources (`beam_sources`)


def _scan(src: Path, excludes: frozenset[str], drop_roots: tuple[str, ...], skip: frozenset[str],
          scans: dict | None) -> list:
    """(rel, path, lstat, dropped) of every file and symlink under `src`, parents' entries first;
    `dropped`: a native build output under one of `drop_roots`. Kept in `scans` when given (one
    build's: every target syncs the same sources)."""
    key = (str(src), excludes, drop_roots, skip)
    if scans is not None and key in scans:
        return scans[key]
    found = []
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = os.path.relpath(dirpath, src)
        dirnames[:] = [d for d in dirnames
                       if os.path.normpath(os.path.join(rel_dir, d)) not in excludes
                       and os.path.join(dirpath, d) not in skip]
        dropping = any(dirpath == r or dirpath.startswith(r + os.sep) for r in drop_roots)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            s = Path(dirpath) / name
            st = s.lstat()
            dropped = dropping and not stat.S_ISLNK(st.st_mode) and _is_host_output(s, st)
            found.append((os.path.normpath(os.path.join(rel_dir, name)), s, st, dropped))
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    if scans is not None:
        scans[key] = found
    return found


def sync_tree(src: Path, dst: Path, *, excludes: set[str] = frozenset(), drop_binaries_under: list[Path] = (),
              skip_subtrees: list[Path] = (), beam_sources: tuple[str, ...] = (),
              scans: dict | None = None, twin: Path | None = None) -> SyncStats:
    """Make `dst` hold `src`'s files: copy new/changed ones (mtimes kept, so mix and make see
    them unchanged), remove files that left `src` since the last sync, and leave build outputs
    that exist only in `dst` alone. Native binaries under `drop_binaries_under` are not copied.
    Files ending in one of `beam_sources` are left out of the native digest and, with `twin`
    (another target's mirror of `src`, synced this build), are hard links to its copies. `scans`:
    a dict the targets of one build share, so `src` is scanned once for all of them."""
    stats = SyncStats()
    state, native = hashlib.sha256(), hashlib.sha256()
    manifest_path = dst / MANIFEST
    try:
        previous = set(json.loads(manifest_path.read_text()))
    except (OSError, ValueError):
        previous = set()
    current: set[str] = set()
    scan = _scan(src, frozenset(excludes), tuple(str(p) for p in drop_binaries_under),
                 frozenset(str(p) for p in skip_subtrees), scans)
    for rel, s, st, dropped in scan:
        if dropped:
            stats.skipped_binaries += 1
            continue
        current.add(rel)
        line = f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_mode}\n".encode()
        state.update(line)
        beam_only = bool(beam_sources) and rel.endswith(beam_sources)
        if not beam_only:
            native.update(line)
        if _copy_unless_same(s, st, dst / rel, twin / rel if twin is not None and beam_only else None):
            stats.copied += 1
    for rel in previous - current:
        p = dst / rel
        if p.is_symlink() or p.is_file():
            p.unlink()
            stats.removed += 1
    dst.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(sorted(current)))
    stats.digest, stats.native_digest = state.hexdigest(), native.hexdigest()
    return stats


def _same(s: Path, st: os.stat_result, d: Path) -> bool:
    """Whether `d` already mirrors `s` (lstat `st`): the same link, or a file of its size and mtime."""
    try:
        b = d.lstat()
        if stat.S_ISLNK(st.st_mode):
            return stat.S_ISLNK(b.st_mode) and os.readlink(s) == os.readlink(d)
        if stat.S_ISLNK(b.st_mode):
            return False
    except OSError:
        return False
    return st.st_size == b.st_size and int(st.st_mtime) == int(b.st_mtime)


def _copy_unless_same(s: Path, st: os.stat_result, d: Path, twin: Path | None = None) -> bool:
    """Make `d` a copy of `s` (mtime kept) or the same symlink, unless it is already; True when
    copied. `twin`: another tree's copy of `s`, which `d` becomes a hard link to when it is whole."""
    if _same(s, st, d):
        return False
    d.parent.mkdir(parents=True, exist_ok=True)
    if d.is_symlink() or d.is_file():
        d.unlink()
    elif d.is_dir():
        shutil.rmtree(d)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(s), d)
    elif twin is None or not _linked(s, st, d, twin):
        shutil.copy2(s, d)
    return True


def _linked(s: Path, st: os.stat_result, d: Path, twin: Path) -> bool:
    """Make `d` a hard link to `twin` if that is a copy of `s` as it is (no build writes a BEAM-only
    source in place; a sync replaces a changed file with a new one, its mtime set last)."""
    try:
        os.link(twin, d)
    except OSError:  # no twin (yet), or links not possible here
        return False
    if _same(s, st, d):
        return True
    d.unlink()  # a stale copy (its tree not synced yet), or one another build is still writing
    return False


def mirrored(root: Path, path: Path) -> Path:
    """Where absolute `path` lives inside a mirror rooted at `root`."""
    return root / Path(path).resolve().relative_to(Path(path).resolve().anchor)


@dataclass
class Workspace:
    """One target's build tree."""

    root: Path  # mirror root
    project: Path  # the project's copy inside it
    key: str

    @property
    def build_dir(self) -> Path:
        return self.project / "_build"

    def relink_from(self, other: Workspace, mix_env: str) -> None:
        """Seed this tree's _build/<env> from another target's (BEAM code compiled once)."""
        src = other.build_dir / mix_env
        dst = self.build_dir / mix_env
        if dst.exists() or not src.exists():
            return
        shutil.copytree(src, dst, symlinks=True)
        # symlinks that point into the other tree by absolute path are re-pointed into ours
        for dirpath, dirnames, filenames in os.walk(dst):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                if p.is_symlink():
                    target = os.readlink(p)
                    if target.startswith(str(other.root)):
                        p.unlink()
                        os.symlink(str(self.root) + target[len(str(other.root)):], p)


def project_key(project_dir: Path, mix_env: str) -> str:
    """The cache folder of one project (by its absolute path): `<name>-<digest>`."""
    project_dir = Path(project_dir).resolve()
    digest = hashlib.sha256(f"{project_dir}|{mix_env}".encode()).hexdigest()[:12]
    return f"{project_dir.name}-{digest}"


def workspace_for(project_dir: Path, mix_env: str, target_id: str, runtime_key: str) -> Workspace:
    resolved, builds = Path(project_dir).resolve(), cache.area("builds")
    folder = project_key(resolved, mix_env)
    write_if_changed(builds / folder / PROJECT_RECORD, str(resolved))
    key = f"{folder}/{mix_env}/{target_id}-{runtime_key}"
    root = builds / key / "root"
    return Workspace(root=root, project=mirrored(root, project_dir), key=key)


def project_gone(area: str, folder: Path) -> bool:
    """A project's folder of build trees whose project directory no longer holds a mix.exs
    (`xrel cache prune` removes it; folders of an xrel that recorded no directory are kept)."""
    if area != "builds":
        return False
    try:
        project_dir = Path((folder / PROJECT_RECORD).read_text())
    except OSError:
        return False
    return project_dir.is_absolute() and not (project_dir / "mix.exs").is_file()
