"""Finish an assembled release for its target, then package it: tarball, sha256, manifest."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import tarfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from xrel.inspection import binaries
from xrel.release.marker import ReleaseMarker
from xrel.release.target_build import TargetBuild
from xrel.runtimes import Runtime
from xrel.storage.cache import content_fingerprint
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


class _HashingWriter:
    """A file wrapper that hashes what is written through it."""

    def __init__(self, raw):
        self.raw, self.digest = raw, hashlib.sha256()

    def write(self, data) -> int:
        self.digest.update(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def parallel_gzip(data, out, level: int = 6, chunk: int = 1 << 20) -> None:
    """Write `data` as ONE gzip member, compressed on all cores the way pigz does it: 1 MiB
    blocks deflated independently, each ending on a byte boundary (sync flush), joined into one
    deflate stream; the CRC is of the whole. Any gzip reader (erl_tar included) reads it."""
    blocks = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]

    def deflate(index: int) -> bytes:
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        body = c.compress(blocks[index])
        return body + c.flush(zlib.Z_FINISH if index == len(blocks) - 1 else zlib.Z_SYNC_FLUSH)

    out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # gzip header, mtime 0, OS unknown
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for body in pool.map(deflate, range(len(blocks))):
            out.write(body)
    out.write(struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF))


def _normal_mode(mode: int, is_dir: bool) -> int:
    """0755 for directories and anything executable, else 0644 (no umask or setuid of the build machine)."""
    return 0o755 if is_dir or mode & 0o111 else 0o644


def _add_tree(tar: tarfile.TarFile, root: Path, mtime: int | None = None, exclude: frozenset = frozenset()) -> None:
    """Members in a stable order, owned by root:root (no lookups of this machine's users). With `mtime`:
    every member gets that time and a normal mode (a reproducible tarball). `exclude`: relative paths left out."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in sorted(dirnames) + sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if rel in exclude:
                continue
            st = os.lstat(path)
            info = tarfile.TarInfo(rel)
            info.mode, info.mtime, info.uname, info.gname = st.st_mode & 0o7777, int(st.st_mtime), "root", "root"
            if mtime is not None:
                info.mtime, info.mode = mtime, _normal_mode(st.st_mode, os.path.isdir(path))
            if name in links or os.path.islink(path):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(path), 0o777
                tar.addfile(info)
            elif os.path.isdir(path):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)


def reproducible_tarball(release_dir: Path, dest: Path, mtime: int, exclude: frozenset[str] = frozenset()) -> str:
    """A .tar.gz of the release whose bytes depend only on its files' contents: sorted members, root:root,
    every mtime `mtime`, normal modes, no gzip timestamp; `exclude` left out. Returns its sha256."""
    buffer, compressed = io.BytesIO(), io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_tree(tar, release_dir, mtime, exclude)
    hashing = _HashingWriter(compressed)
    parallel_gzip(buffer.getbuffer(), hashing)
    atomic_write(dest, compressed.getvalue(), 0o644)
    return hashing.digest.hexdigest()


def tarball_name(release: str, version: str, otp_major: int, target_id: str) -> str:
    """`myapp-1.2.0-otp27-aarch64-linux-gnu.tar.gz`: sorts by release and version, greps by OTP and target."""
    return f"{release}-{version}-otp{otp_major}-{target_id}.tar.gz"


def link_old_name(tarball: Path, old: Path) -> None:
    """Keep the name xrel used before versions were in names (`<release>-<vsn>-<target>.tar.gz`)
    reachable: a relative symlink to the tarball, and one for its .sha256."""
    sums = (old.with_name(old.name + ".sha256"), tarball.with_name(tarball.name + ".sha256"))
    for link, dest in ((old, tarball), sums):
        if link.is_symlink() and os.readlink(link) == dest.name:
            continue
        tmp = link.with_name(f".{link.name}.{os.getpid()}.link")
        tmp.unlink(missing_ok=True)
        os.symlink(dest.name, tmp)
        os.replace(tmp, link)


def write_tarball(release_dir: Path, dest: Path) -> str:
    """A .tar.gz of the release (no top folder, like mix's :tar step) and its .sha256 beside it.
    An existing tarball of identical content is kept (same bytes, no recompression)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fingerprint = content_fingerprint(release_dir)
    stamp = dest.with_name(dest.name + ".content")
    checksum = dest.with_name(dest.name + ".sha256")
    if dest.is_file() and checksum.is_file() and stamp.is_file() and stamp.read_text() == fingerprint:
        return checksum.read_text().split()[0]
    buffer, compressed = io.BytesIO(), io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_tree(tar, release_dir)
    hashing = _HashingWriter(compressed)
    parallel_gzip(buffer.getbuffer(), hashing)
    atomic_write(dest, compressed.getvalue(), 0o644)
    sha = hashing.digest.hexdigest()
    checksum.write_text(f"{sha}  {dest.name}\n")
    stamp.write_text(fingerprint)
    return sha


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
