"""An extra target's release made from the first target's instead of by another `mix release`.

The BEAM code is compiled once: a release differs between targets only by what mix copied from
the target's runtime (ERTS, OTP apps) and from the target's tree (native apps' outputs). Each file
of the first target's release (the seed) is taken as it is (a hard link) or replaced by the
target's own source, file by file:
  * bin/ and releases/ are mix's and xrel's own writing: the same for every target (copied);
  * BEAM code of apps that are neither native nor recompiled per target: the seed's;
  * anything else came from a source file: when the seed's and the target's sources are the same,
    the seed's file; when mix copied the seed's unchanged, the target's source; else no derivation.
Whenever a rule cannot tell (another ERTS version, other OTP app versions or .app files, other
directory listings, a Windows target, a source outside the trees), derive_release says no and the
target runs its own `mix release`, as before.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from xrel.release.target_build import TargetBuild
from xrel.storage.files import atomic_write, file_identity, same_bytes

MIX_WRITTEN_ERTS = frozenset({"bin/erl", "bin/erl.ini"})  # mix writes these from its own templates
NOT_COPIED = frozenset({"releases/COOKIE", "releases/xrel.json"})  # per build, per target


class Underivable(Exception):
    """The target's release cannot be told from the seed's: mix must assemble it."""


class SeedFailed(Exception):
    """The first target's build failed: the targets started from it stop (its error is the build's)."""

    step_end = "stopped"


@dataclass(frozen=True)
class Seed:
    """The first target's build, whose release and trees the other targets start from. They may
    start while its release assembles (its compiled apps are final then): `wait` until it is done."""

    build: TargetBuild
    _over: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)
    _failed: list = field(default_factory=list, compare=False, repr=False)
    _over_at: list = field(default_factory=list, compare=False, repr=False)

    def finished(self, *, failed: bool = False) -> None:
        """The first target's build is over (`failed`: without a release)."""
        if failed:
            self._failed.append(True)
        self._over_at.append(time.monotonic())
        self._over.set()

    def own_time_from(self, started: float) -> float:
        """The start of a target's own time: `started`, or the first target's end when that came later
        (what it did beside the first target's build does not count as its seconds)."""
        return max([started, *self._over_at[:1]])

    def wait(self) -> None:
        """Until the first target's build is over; SeedFailed if it failed."""
        self._over.wait()
        if self._failed:
            raise SeedFailed(f"{self.build.target}'s build failed")

    def info(self) -> dict:
        """What the seed's `mix release` reported (xrel's mix wrapper writes it)."""
        try:
            return json.loads(self.build.release_info.read_text())
        except (OSError, ValueError) as e:
            raise Underivable(f"no release info: {e}") from None


def target_specific(build: TargetBuild) -> dict[str, bool]:
    """Name -> whether its BEAM code too is the target's, for every app with native outputs."""
    return {a.name: a.recompile_per_target for a in build.project.apps if a.native or a.recompile_per_target}


class _Mapper:
    """Where the target's `mix release` would have taken what the seed's took from a path."""

    def __init__(self, seed: TargetBuild, build: TargetBuild) -> None:
        self.roots = [(os.path.realpath(a), os.path.realpath(b)) for a, b in (
            (seed.runtime.root, build.runtime.root), (seed.workspace.root, build.workspace.root))]

    def inside(self, path: str) -> bool:
        return any(path == a or path.startswith(a + os.sep) for a, _b in self.roots)

    def translate(self, path: str) -> str:
        for a, b in self.roots:
            if path == a or path.startswith(a + os.sep):
                return b + path[len(a):]
        raise Underivable(f"{path} is outside the seed's runtime and tree")


class _Comparisons:
    """Whether two files have the same mode and bytes, remembered by both files' identity (device,
    inode, size, mtime, mode) in the target's state dir: the seed's and the target's runtimes never
    change, so their files are read and compared once, not at every build."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.known: dict[str, list] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.known = {}
        self.used: dict[str, list] = {}

    def same(self, a: str, b: str) -> bool:
        """Whether regular files `a` and `b` are the same; Underivable when either is not one."""
        try:
            sa, sb = os.stat(a), os.stat(b)
        except OSError as e:
            raise Underivable(f"no source file {e.filename}") from None
        if not (stat.S_ISREG(sa.st_mode) and stat.S_ISREG(sb.st_mode)):
            raise Underivable(f"{a} or {b} is not a regular file")
        if sa.st_mode != sb.st_mode or sa.st_size != sb.st_size:
            return False
        idents = [file_identity(sa), file_identity(sb)]
        entry = self.known.get(a + "\0" + b)
        if entry is None or entry[:2] != idents:
            entry = [*idents, same_bytes(a, b)]
        self.used[a + "\0" + b] = entry
        return entry[2]

    def save(self) -> None:
        """Keep what this build compared (only that: entries of replaced files go)."""
        if self.used != self.known:
            atomic_write(self.path, json.dumps(self.used))


def _listing(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


class _Plan:
    """The derived release's files: (relative path, source, link or copy)."""

    def __init__(self, seed: Seed, build: TargetBuild) -> None:
        self.seed, self.build, self.map = seed.build, build, _Mapper(seed.build, build)
        info = seed.info()
        self.apps = {f"{name}-{p['vsn']}": (name, p["path"]) for name, p in info.get("applications", {}).items()}
        self.erts = info.get("erts_source")
        self.specific = target_specific(build)
        self.tree = os.path.realpath(self.seed.workspace.root) + os.sep
        self.dirs: list[str] = []
        self.files: list[tuple[str, str, bool]] = []  # rel, source, hard link
        self.known: dict[tuple[str, str], tuple[str | None, bool]] = {}
        self.real_dirs: dict[str, str] = {}
        self.compared = _Comparisons(build.state_dir / "derive-comparisons.json")

    def real_dir(self, path: str) -> str:
        """os.path.realpath of a directory, once per directory (it lstats every component)."""
        if path not in self.real_dirs:
            self.real_dirs[path] = os.path.realpath(path)
        return self.real_dirs[path]

    def real(self, path: str) -> str:
        """`path` with its directory's symlinks resolved (mix links priv/ into the sources)."""
        parent, name = os.path.split(path)
        return os.path.join(self.real_dir(parent), name)

    def source(self, top: str, sub: str) -> tuple[str | None, bool]:
        """The seed's source dir of release dir `top` and whether it is the same for every target."""
        if (top, sub) not in self.known:
            self.known[top, sub] = self._source(top, sub)
        return self.known[top, sub]

    def _source(self, top: str, sub: str) -> tuple[str | None, bool]:
        if top.startswith("erts-"):
            if not self.erts or os.path.basename(self.erts) != top:
                raise Underivable("the release's ERTS is not the seed runtime's")
            return os.path.realpath(self.erts), False
        if top.startswith("lib/"):
            name, path = self.apps.get(top[4:], (None, None))
            if path is None:
                raise Underivable(f"{top} is no application of the seed's release")
            path = os.path.realpath(path)
            if not self.map.inside(path):  # the host's Elixir apps, the node agent: every target's
                return path, True
            if not path.startswith(self.tree):  # an OTP app of the runtime
                return path, False
            return path, name not in self.specific or (sub == "ebin" and not self.specific[name])
        return None, True

    def add(self, rel: str, seed_file: str) -> None:
        parts = rel.split(os.sep)
        cut = 2 if parts[0] == "lib" else 1
        top, rest, sub = os.sep.join(parts[:cut]), os.sep.join(parts[cut:]), parts[cut] if len(parts) > cut else ""
        if parts[0] not in ("bin", "releases", "lib") and not parts[0].startswith("erts-"):
            raise Underivable(f"unknown release entry {rel}")
        src_dir, shared = self.source(top, sub)
        if src_dir is None or shared:
            self.files.append((rel, seed_file, src_dir is not None))
            return
        if top.startswith("erts-") and rest in MIX_WRITTEN_ERTS:
            self.files.append((rel, seed_file, True))
            return
        s1 = self.real(os.path.join(src_dir, rest))
        st = self.map.translate(s1)
        if self.compared.same(s1, st):  # (Underivable when either is missing)
            self.files.append((rel, seed_file, True))
        elif rest.endswith(".app"):
            raise Underivable(f"{rel} differs: the boot script would too")
        elif self.compared.same(seed_file, s1):
            self.files.append((rel, st, False))
        else:
            raise Underivable(f"{rel}: mix changed the seed's copy and the target's source differs")

    def check_dir(self, rel_dir: str) -> None:
        """A directory mix copied must list the same names in the seed's and the target's source."""
        parts = rel_dir.split(os.sep)
        if parts[0] == "lib" and len(parts) >= 2:
            top, rest = os.path.join(*parts[:2]), os.path.join(*parts[2:]) if len(parts) > 2 else ""
        elif parts[0].startswith("erts-"):
            top, rest = parts[0], os.path.join(*parts[1:]) if len(parts) > 1 else ""
        else:
            return
        src_dir, shared = self.source(top, rest.split(os.sep)[0] if rest else "")
        if src_dir is None or shared:
            return
        s1 = self.real_dir(os.path.join(src_dir, rest) if rest else src_dir)
        if _listing(s1) != _listing(self.map.translate(s1)):
            raise Underivable(f"{rel_dir}: the target's source lists other files")


def plan(seed: Seed, build: TargetBuild) -> _Plan:
    """Every directory and file of the target's release, with the files' sources; raises Underivable."""
    if build.target.os == "windows" or seed.build.target.os != build.target.os:
        raise Underivable("another OS: other scripts and file names")
    p, root = _Plan(seed, build), str(seed.build.release_dir)
    todo = [""]
    while todo:  # one scandir per directory: its entries' types come without a stat each
        rel_dir = todo.pop()
        if rel_dir:
            p.check_dir(rel_dir)
            p.dirs.append(rel_dir)
        prefix = rel_dir + os.sep if rel_dir else ""
        with os.scandir(os.path.join(root, rel_dir)) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_symlink():
                    raise Underivable(f"{rel} is a symlink")
                if entry.is_dir(follow_symlinks=False):
                    todo.append(rel)
                elif rel not in NOT_COPIED:
                    p.add(rel, entry.path)
    return p


def _copied_unchanged(source: str, previous: str) -> bool:
    """Whether `previous` (the file in the target's last release) is a copy2 of `source` as it is now."""
    try:
        a, b = os.stat(source), os.lstat(previous)
    except OSError:
        return False
    return (stat.S_ISREG(b.st_mode) and a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns
            and a.st_mode == b.st_mode)


def _put(source: str, dest: str, link: bool, previous: str) -> None:
    """A hard link to `source`, else a copy; a copy the target's last release made of the same
    source is taken over as it is (a link to it: no bytes copied, and the tarball need not read it)."""
    origin = source if link else (previous if _copied_unchanged(source, previous) else None)
    if origin is not None:
        try:
            os.link(origin, dest)
            return
        except OSError:
            pass
    shutil.copy2(source, dest)


def translated_info(seed: Seed, build: TargetBuild) -> dict:
    """The seed's release info as the target's `mix release` would have written it."""
    info, mapper = seed.info(), _Mapper(seed.build, build)

    def moved(path: str | None) -> str | None:
        real = os.path.realpath(path) if path else None
        return mapper.translate(real) if real and mapper.inside(real) else path

    apps = {name: {**props, "path": moved(props.get("path"))} for name, props in info.get("applications", {}).items()}
    return {**info, "erts_source": moved(info.get("erts_source")), "applications": apps}


def derive_release(seed: Seed, build: TargetBuild, staging: Path) -> str | None:
    """Lay out the target's release in `staging` from the seed's; None when done, else why not."""
    try:
        laid_out = plan(seed, build)
        laid_out.compared.save()
        info = translated_info(seed, build)
        for rel in laid_out.dirs:
            os.makedirs(os.path.join(staging, rel), exist_ok=True)
        new, last = str(staging) + os.sep, str(build.release_dir) + os.sep
        for rel, source, link in laid_out.files:  # OSError too: another xrel replaced the seed's release
            _put(source, new + rel, link, last + rel)
    except (Underivable, OSError) as e:
        return str(e)
    cookie = staging / "releases" / "COOKIE"  # mix's: a random secret per build
    cookie.write_text(base64.b32encode(os.urandom(32)).decode())
    build.release_info.write_text(json.dumps(info))
    return None
