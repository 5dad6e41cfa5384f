"""Safe extraction of tar, zip, deb and apk archives.

Refused everywhere: `..` components, absolute member paths, links that point outside the
root, device and fifo entries, and members written through an earlier symlink. System
packages (deb, apk) may carry absolute symlinks: those are re-rooted inside the destination.
"""

from __future__ import annotations

import contextlib
import io
import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from xrel.errors import VerificationError


class UnsafeArchive(VerificationError):
    pass


def _clean_name(name: str, archive: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
        raise UnsafeArchive(f"{archive}: refusing absolute path {name!r}", "the archive is hostile or broken")
    if ".." in path.parts:
        raise UnsafeArchive(f"{archive}: refusing path with '..': {name!r}", "the archive is hostile or broken")
    parts = [p for p in path.parts if p not in (".", "")]
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _strip(path: PurePosixPath, n: int) -> PurePosixPath | None:
    if n == 0:
        return path
    parts = path.parts[n:]
    return PurePosixPath(*parts) if parts else None


def _mkdir(path: Path) -> None:
    """mkdir -p through links already checked to stay inside the root (usrmerged packages)."""
    Path(os.path.realpath(path)).mkdir(parents=True, exist_ok=True)


class _Writer:
    """Writes members under `root`, refusing anything that would land outside it."""

    def __init__(self, root: Path, archive: str, reroot_absolute_links: bool):
        self.root = root.resolve()
        self.archive = archive
        self.reroot = reroot_absolute_links
        self.root.mkdir(parents=True, exist_ok=True)

    def _target(self, rel: PurePosixPath) -> Path:
        dest = self.root.joinpath(*rel.parts)
        parent = dest.parent.resolve()
        if parent != self.root and self.root not in parent.parents:
            raise UnsafeArchive(f"{self.archive}: {rel} would be written through a link outside the root",
                                "the archive is hostile")
        return dest

    def directory(self, rel: PurePosixPath) -> None:
        target = self._target(rel)
        if target.is_symlink() and target.resolve() != self.root and self.root not in target.resolve().parents:
            raise UnsafeArchive(f"{self.archive}: directory {rel} is a link outside the root", "the archive is hostile")
        _mkdir(target)

    def file(self, rel: PurePosixPath, data: IO[bytes], mode: int) -> None:
        dest = self._target(rel)
        _mkdir(dest.parent)
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        with open(dest, "wb") as out:
            while block := data.read(1 << 20):
                out.write(block)
        os.chmod(dest, (mode & 0o777) | 0o600)

    def symlink(self, rel: PurePosixPath, link: str) -> None:
        dest = self._target(rel)
        link_path = PurePosixPath(link)
        if link_path.is_absolute():
            if not self.reroot:
                raise UnsafeArchive(f"{self.archive}: refusing absolute link {rel} -> {link}", "the archive is hostile")
            inside = _clean_name(link.lstrip("/"), self.archive)
            link = os.path.relpath(self.root.joinpath(*inside.parts), dest.parent)
        resolved = os.path.normpath(os.path.join(str(dest.parent), link))
        if resolved != str(self.root) and not resolved.startswith(str(self.root) + os.sep):
            raise UnsafeArchive(f"{self.archive}: refusing link {rel} -> {link} pointing outside the root",
                                "the archive is hostile")
        _mkdir(dest.parent)
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        os.symlink(link, dest)

    def hardlink(self, rel: PurePosixPath, source: PurePosixPath) -> None:
        src = self._target(source)
        if not src.is_file():
            raise UnsafeArchive(f"{self.archive}: hard link {rel} -> {source} has no target inside the root")
        with open(src, "rb") as data:
            self.file(rel, data, src.stat().st_mode)


def extract_tar(fileobj: IO[bytes] | Path, dest: Path, *, strip_components: int = 0,
                reroot_absolute_links: bool = False, name: str | None = None) -> list[str]:
    """Extract a tar stream (any compression tarfile knows, plus zstd) into `dest`."""
    label = name or str(fileobj)
    with contextlib.ExitStack() as opened:
        if isinstance(fileobj, Path):
            fileobj = opened.enter_context(_decompressed(fileobj))
        return _extract_tar_stream(fileobj, dest, label, strip_components, reroot_absolute_links)


def _extract_tar_stream(fileobj: IO[bytes], dest: Path, label: str, strip_components: int,
                        reroot_absolute_links: bool) -> list[str]:
    writer = _Writer(dest, label, reroot_absolute_links)
    written = []
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        for member in tar:
            rel = _strip(_clean_name(member.name, label), strip_components)
            if rel is None or str(rel) == ".":
                continue
            if member.isdir():
                writer.directory(rel)
            elif member.isreg():
                writer.file(rel, tar.extractfile(member), member.mode)
            elif member.issym():
                writer.symlink(rel, member.linkname)
            elif member.islnk():
                target = _strip(_clean_name(member.linkname, label), strip_components)
                if target is None:
                    raise UnsafeArchive(f"{label}: hard link {member.name} -> {member.linkname} is stripped away")
                writer.hardlink(rel, target)
            else:
                raise UnsafeArchive(f"{label}: refusing special file {member.name!r} (device or fifo)",
                                    "the archive is hostile")
            written.append(str(rel))
    return written


def _decompressed(path: Path) -> IO[bytes]:
    """Open a possibly zstd-compressed file; tarfile handles gz/bz2/xz itself. The caller closes it."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))
    return open(path, "rb")


def extract_zip(path: Path, dest: Path, *, strip_components: int = 0) -> list[str]:
    writer = _Writer(dest, str(path), False)
    written = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            rel = _strip(_clean_name(info.filename, str(path)), strip_components)
            if rel is None or str(rel) == ".":
                continue
            mode = info.external_attr >> 16
            if info.is_dir():
                writer.directory(rel)
            elif stat.S_ISLNK(mode):
                writer.symlink(rel, zf.read(info).decode())
            elif mode and not stat.S_ISREG(mode):
                raise UnsafeArchive(f"{path}: refusing special file {info.filename!r}", "the archive is hostile")
            else:
                with zf.open(info) as data:
                    writer.file(rel, data, mode or 0o644)
            written.append(str(rel))
    return written


# -- Debian packages (ar archives) ------------------------------------------------------------

def ar_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, data) of each member of a Unix ar archive, as a .deb is."""
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise UnsafeArchive(f"{path} is not an ar archive (a .deb)", "the download is corrupt")
        while header := f.read(60):
            if len(header) < 60:
                raise UnsafeArchive(f"{path}: truncated ar header")
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            data = f.read(size)
            if size % 2:
                f.read(1)
            yield name, data


def deb_part(path: Path, which: str) -> tuple[str, bytes]:
    """The `control` or `data` tarball of a .deb: (member name, raw bytes)."""
    for name, data in ar_members(path):
        if name.startswith(f"{which}.tar"):
            return name, data
    raise UnsafeArchive(f"{path} has no {which}.tar member", "the package is corrupt")


def _open_compressed(name: str, data: bytes) -> IO[bytes]:
    if name.endswith(".zst"):
        import zstandard

        return io.BytesIO(zstandard.ZstdDecompressor().decompressobj().decompress(data))
    if name.endswith(".xz"):
        return io.BytesIO(lzma.decompress(data))
    return io.BytesIO(data)


def extract_deb(path: Path, dest: Path) -> list[str]:
    """Unpack a .deb's data tarball into `dest` (as dpkg-deb -x does)."""
    name, data = deb_part(path, "data")
    return extract_tar(_open_compressed(name, data), dest, reroot_absolute_links=True, name=path.name)


# -- gzip members (Alpine .apk and APKINDEX) ---------------------------------------------------

def gzip_members(data: bytes) -> list[bytes]:
    """Split concatenated gzip streams; returns each member's compressed bytes."""
    members = []
    offset = 0
    while offset < len(data):
        d = zlib.decompressobj(wbits=31)
        try:
            d.decompress(data[offset:])
        except zlib.error as e:
            raise UnsafeArchive(f"corrupt gzip stream at byte {offset}: {e}", "the download is corrupt") from None
        if not d.eof:
            raise UnsafeArchive(f"truncated gzip stream at byte {offset}", "the download is corrupt")
        end = len(data) - len(d.unused_data)
        members.append(data[offset:end])
        offset = end
    return members


def gunzip(member: bytes) -> bytes:
    return zlib.decompress(member, wbits=31)
