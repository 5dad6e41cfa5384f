"""`xrel dist --check`: build everything again from nothing and require the same bytes.

The rebuild is another `xrel build` process whose cache shares everything with this one (runtimes,
toolchains, downloads, zig's cache) except the build trees: every dependency and module compiles
again, in trees at another absolute path, into a scratch output dir. Its tarballs, manifest and
SHA256SUMS must equal the dist's byte for byte (the signatures are a function of those bytes:
Ed25519 is deterministic and the trusted comment has no timestamp). A mismatch names the files
and, for a tarball, the members that differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from xrel.errors import BuildError, VerificationError
from xrel.release.results import BuildResult, TargetResult

SHARED_AREAS_BUT = ("builds",)  # a rebuild from nothing: fresh build trees, every other cache area shared


def scratch_cache(scratch: Path) -> Path:
    """A cache dir linking every area of xrel's cache but the build trees."""
    from xrel.storage import cache

    real, root = cache.cache_root(), scratch / "cache"
    root.mkdir(parents=True)
    for name in cache.AREAS:
        if name not in SHARED_AREAS_BUT and (real / name).is_dir():
            os.symlink(real / name, root / name)
    return root


def build_command(build_args: dict, out: Path) -> list[str]:
    """`xrel build` with the dist's own arguments, into `out`, answering in JSON."""
    cmd = [sys.executable, "-m", "xrel", "-q", "build", str(build_args["project_dir"]), "--out", str(out), "--json"]
    targets = build_args.get("targets") or ()
    for target in [targets] if isinstance(targets, str) else targets:
        cmd += ["--target", str(target)]
    for option in ("otp", "source"):
        if build_args.get(option):
            cmd += [f"--{option}", build_args[option]]
    return cmd + [f"--{flag}" for flag in ("locked", "offline", "tarball") if build_args.get(flag)]


def rebuild(build_args: dict, scratch: Path, epoch: int) -> BuildResult:
    """Every target built again in another process, in fresh build trees (see the module's doc)."""
    env = {**os.environ, "XREL_CACHE_DIR": str(scratch_cache(scratch)), "SOURCE_DATE_EPOCH": str(epoch),
           "XREL_KEEP_MIX": "0"}  # (its scratch trees are deleted: no mix VM kept for a next build)
    done = subprocess.run(build_command(build_args, scratch / "out"), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"the --check rebuild failed: {done.stderr.strip()[-2000:]}",
                        "run `xrel build` to see the failure; `xrel dist` without --check still works")
    data = json.loads(done.stdout)
    return BuildResult(**{**data, "targets": [TargetResult.from_dict(t) for t in data["targets"]]})


def _members(tarball: Path) -> dict[str, tuple]:
    """Member name -> (its header's fields, the sha256 of its data)."""
    members = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for m in tar:
            data = tar.extractfile(m).read() if m.isfile() else b""
            members[m.name] = (m.type, m.mode, m.uid, m.gid, m.uname, m.gname, m.mtime, m.linkname,
                               m.size, hashlib.sha256(data).hexdigest())
    return members


def differing_members(a: Path, b: Path) -> list[str]:
    """The members of two tarballs that are not the same (in either only, or with other headers or data)."""
    try:
        ma, mb = _members(a), _members(b)
    except (OSError, tarfile.TarError) as e:
        return [f"(unreadable: {e})"]
    return sorted(n for n in ma.keys() | mb.keys() if ma.get(n) != mb.get(n))


def mismatches(dist: Path, again: Path) -> list[str]:
    """What differs between a dist and its rebuild: file names, each tarball's with its differing members."""
    names = sorted({p.name for p in dist.iterdir()} | {p.name for p in again.iterdir()})
    found = []
    for name in names:
        if name.endswith(".minisig") and not (again / name).exists():
            continue  # the rebuild is not signed; a signature is a function of the bytes compared here
        a, b = dist / name, again / name
        if a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes():
            continue
        members = differing_members(a, b) if name.endswith(".tar.gz") and a.is_file() and b.is_file() else []
        shown = f" (members: {', '.join(members[:10])}{', ...' if len(members) > 10 else ''})" if members else ""
        found.append(name + shown)
    return found


def rebuild_and_compare(build_args: dict, project: Path, staging: Path, epoch: int, upgrade_from=None) -> None:
    """Build again from nothing, put a dist together from it (upgrade packages too), and require `staging`'s bytes."""
    from xrel.dist.make import write_dist

    scratch = staging.with_name(staging.name + "-check")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        again = rebuild(build_args, scratch, epoch)
        write_dist(again, project, scratch / "dist", epoch, upgrade_from)
        found = mismatches(staging, scratch / "dist")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if found:
        raise VerificationError(f"not reproducible: a rebuild from nothing gave other bytes for {'; '.join(found)}",
                                "look for build-time data in those files (paths, dates, random values) and report it")


__all__ = ["differing_members", "mismatches", "rebuild_and_compare"]
